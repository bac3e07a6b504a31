// amqps://: rabbitmq-c's OpenSSL socket set up from amqp.tls (trust store, client certificate,
// host check by OpenSSL), and the reasons OpenSSL knows but rabbitmq-c does not pass on.
#include "amqp_tls.h"

#include <amqp_ssl_socket.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "amqp_session.h"

namespace rmq2pg {
namespace {

// The first certificate problem OpenSSL met while checking the broker's chain in this thread's
// latest handshake. rabbitmq-c keeps the verify result to itself and only reports "peer verify
// failed"; this callback sees the reason ("certificate has expired", "hostname mismatch").
// Thread-local: a handshake runs from start to end inside one AmqpSession constructor.
thread_local std::string tls_verify_problem;

int remember_verify_problem(int ok, X509_STORE_CTX* store) {
    if (!ok && tls_verify_problem.empty()) {
        tls_verify_problem = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
        if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
            char subject[256];
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
            tls_verify_problem += std::string(" (certificate ") + subject + ")";
        }
    }
    return ok;  // unchanged: rabbitmq-c decides from the verify result, as without a callback
}

// An encrypted key would make OpenSSL prompt on the terminal (a daemon would hang there):
// refuse it instead, so the load fails with a message.
int no_key_password(char*, int, int, void*) {
    return 0;
}

bool is_ip_address(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

void clear_tls_errors() {
    tls_verify_problem.clear();
    ERR_clear_error();
}

std::string openssl_reason() {
    unsigned long code = ERR_peek_last_error();
    const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
    ERR_clear_error();
    return reason != nullptr ? reason : "";
}

std::string tls_verify_failure(int status, const AmqpUrl& url) {
    if (status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)  // rabbitmq-c's own check
        return "the certificate does not name host '" + url.host +
               "' (see amqp.tls.verify_hostname)";
    if (tls_verify_problem.find("mismatch") != std::string::npos)  // OpenSSL's host check
        return tls_verify_problem +
               " (the URL must name the broker as its certificate does, see "
               "amqp.tls.verify_hostname)";
    const std::string& ca_file = url.tls_options.ca_file;
    return (tls_verify_problem.empty() ? "the broker's certificate did not verify"
                                       : tls_verify_problem) +
           " (trusted CAs: " + (ca_file.empty() ? "the system's" : ca_file) +
           ", see amqp.tls.ca_file)";
}

amqp_socket_t* new_tls_socket(amqp_connection_state_t state, const AmqpUrl& url) {
    const AmqpTlsOptions& tls = url.tls_options;
    amqp_socket_t* socket = amqp_ssl_socket_new(state);
    if (socket == nullptr)
        throw AmqpError(AmqpError::Kind::connection,
                        "cannot create a TLS socket: " + openssl_reason());
    auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
    if (!tls.ca_file.empty()) {
        if (amqp_ssl_socket_set_cacert(socket, tls.ca_file.c_str()) != AMQP_STATUS_OK)
            throw AmqpError(AmqpError::Kind::refused,
                            "amqp.tls.ca_file '" + tls.ca_file +
                                "' holds no usable PEM certificate: " + openssl_reason());
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {  // rabbitmq-c loads no CA at all
        throw AmqpError(
            AmqpError::Kind::refused,
            "cannot load the system's trusted CAs (set amqp.tls.ca_file): " + openssl_reason());
    }
    if (!tls.cert_file.empty()) {
        SSL_CTX_set_default_passwd_cb(ctx, no_key_password);
        if (amqp_ssl_socket_set_key(socket, tls.cert_file.c_str(), tls.key_file.c_str()) !=
            AMQP_STATUS_OK)
            throw AmqpError(
                AmqpError::Kind::refused,
                "amqp.tls.cert_file '" + tls.cert_file + "' / key_file '" + tls.key_file +
                    "': not a PEM certificate with its unencrypted key: " + openssl_reason());
    }
    amqp_ssl_socket_set_verify_peer(socket, tls.verify_peer ? 1 : 0);
    // With the chain verified, OpenSSL checks the host too (X509_VERIFY_PARAM): unlike
    // rabbitmq-c's own check, which compares DNS names only, it matches an IP address in the
    // URL against the certificate's IP entries, and a mismatch gets a reason.
    bool openssl_checks_host = tls.verify_peer && tls.verify_hostname;
    if (openssl_checks_host) {
        X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
        int set = is_ip_address(url.host)
                      ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size());
        if (set != 1)
            throw AmqpError(AmqpError::Kind::refused, "cannot verify the TLS host name '" +
                                                          url.host + "': " + openssl_reason());
    }
    amqp_ssl_socket_set_verify_hostname(socket,
                                        tls.verify_hostname && !openssl_checks_host ? 1 : 0);
    // SSL_VERIFY_NONE is rabbitmq-c's own mode (it checks the result after the handshake); the
    // callback only records why the chain failed.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, remember_verify_problem);
    return socket;
}

}  // namespace rmq2pg
