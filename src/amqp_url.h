// AMQP URL parsing the way the Go and Python clients read URLs (pure code, no rabbitmq-c):
// a missing path or "/" is the default vhost "/", "%2f" decodes, user and password are
// percent-decoded, and the password is masked whenever a URL is shown.
#pragma once

#include <optional>
#include <string>

namespace rmq2pg {

// amqp.tls: how amqps:// URLs check the broker and which certificate they present. The config
// loader copies it into every URL, so each place that opens a session gets it with the URL.
struct AmqpTlsOptions {
    std::string ca_file;      // PEM CAs the broker's certificate must chain to; "" = system store
    std::string cert_file;    // client certificate (PEM), with key_file; "" = none presented
    std::string key_file;     // its private key (PEM, unencrypted)
    bool verify_peer = true;  // the chain must verify against ca_file
    bool verify_hostname = true;  // the certificate must name the URL's host (DNS name or IP)
};

struct AmqpUrl {
    bool tls = false;
    std::string host = "localhost";
    int port = 5672;
    std::string user = "guest";
    std::string password = "guest";
    std::string vhost = "/";
    int heartbeat_s = -1;  // from ?heartbeat=, -1 = use amqp.heartbeat_s
    std::string original;
    AmqpTlsOptions tls_options;  // used when tls (amqps://)

    // The URL with any password replaced by "***", safe for logs.
    std::string masked() const;
};

// Returns the parsed URL, or nullopt with a one-line reason in `error`.
std::optional<AmqpUrl> parse_amqp_url(const std::string& text, std::string& error);

// Replaces the password of any "scheme://user:password@" in `text` with "***" (for libpq strings).
std::string mask_url_password(const std::string& text);

// `conninfo` (libpq URI or key=value form) with `password` added last, so it overrides any
// password already there; mask_url_password() hides it whatever characters it holds.
std::string append_libpq_password(const std::string& conninfo, const std::string& password);

}  // namespace rmq2pg
