// AMQP URL parsing the way the Go and Python clients read URLs (pure code, no rabbitmq-c):
// a missing path or "/" is the default vhost "/", "%2f" decodes, user and password are
// percent-decoded, and the password is masked whenever a URL is shown.
#pragma once

#include <optional>
#include <string>

namespace rmq2pg {

struct AmqpUrl {
    bool tls = false;
    std::string host = "localhost";
    int port = 5672;
    std::string user = "guest";
    std::string password = "guest";
    std::string vhost = "/";
    int heartbeat_s = -1;  // from ?heartbeat=, -1 = use amqp.heartbeat_s
    std::string original;

    // The URL with any password replaced by "***", safe for logs.
    std::string masked() const;
};

// Returns the parsed URL, or nullopt with a one-line reason in `error`.
std::optional<AmqpUrl> parse_amqp_url(const std::string& text, std::string& error);

// Replaces the password of any "scheme://user:password@" in `text` with "***" (for libpq strings).
std::string mask_url_password(const std::string& text);

}  // namespace rmq2pg
