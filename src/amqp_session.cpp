// rabbitmq-c behind AmqpSession. Design: every call that can fail goes through check_rpc() or
// check_status(), which map rabbitmq-c's three reply kinds (normal, library exception, server
// connection/channel close) onto AmqpError kinds that say what the caller does next. Deliveries
// are read frame by frame and copied into one block each (see OwnedDelivery), which the worker
// drops after the ack.
#include "amqp_session.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <sstream>

#include "json_escape.h"

namespace rmq2pg {
namespace {

constexpr amqp_channel_t kChannel = 1;
// Connect and RPC timeouts: long enough for a loaded broker, short enough that a dead one is
// noticed before the operator is.
constexpr int kConnectTimeoutS = 10;
constexpr int kRpcTimeoutS = 30;

amqp_bytes_t as_bytes(const std::string& s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string_view as_view(const amqp_bytes_t& b) {
    return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

timeval to_timeval(std::chrono::milliseconds ms) {
    if (ms.count() < 0)
        ms = std::chrono::milliseconds(0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

void append_number(std::string& out, double value) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, ec == std::errc() ? end : buf);
}

// Header field → text of the given kind (nested tables/arrays become JSON).
HeaderValue convert_field(const amqp_field_value_t& v);

void append_field_json(std::string& out, const amqp_field_value_t& v) {
    HeaderValue h = convert_field(v);
    switch (h.kind) {
        case HeaderValue::Kind::text:
            append_json_string(out, h.text);
            break;
        default:
            out += h.text.empty() ? "null" : h.text;
    }
}

HeaderValue convert_field(const amqp_field_value_t& v) {
    using K = HeaderValue::Kind;
    switch (v.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return {K::text, std::string(as_view(v.value.bytes))};
        case AMQP_FIELD_KIND_BOOLEAN:
            return {K::boolean, v.value.boolean ? "true" : "false"};
        case AMQP_FIELD_KIND_I8:
            return {K::number, std::to_string(v.value.i8)};
        case AMQP_FIELD_KIND_U8:
            return {K::number, std::to_string(v.value.u8)};
        case AMQP_FIELD_KIND_I16:
            return {K::number, std::to_string(v.value.i16)};
        case AMQP_FIELD_KIND_U16:
            return {K::number, std::to_string(v.value.u16)};
        case AMQP_FIELD_KIND_I32:
            return {K::number, std::to_string(v.value.i32)};
        case AMQP_FIELD_KIND_U32:
            return {K::number, std::to_string(v.value.u32)};
        case AMQP_FIELD_KIND_I64:
            return {K::number, std::to_string(v.value.i64)};
        case AMQP_FIELD_KIND_U64:
            return {K::number, std::to_string(v.value.u64)};
        case AMQP_FIELD_KIND_TIMESTAMP:
            return {K::timestamp, std::to_string(v.value.u64)};
        case AMQP_FIELD_KIND_F32: {
            std::string s;
            append_number(s, v.value.f32);
            return {K::number, s};
        }
        case AMQP_FIELD_KIND_F64: {
            std::string s;
            append_number(s, v.value.f64);
            return {K::number, s};
        }
        case AMQP_FIELD_KIND_DECIMAL: {
            // value × 10^-decimals, written exactly.
            std::string digits = std::to_string(v.value.decimal.value);
            bool negative = false;  // rabbitmq-c stores the value unsigned
            unsigned places = v.value.decimal.decimals;
            if (places > 0) {
                if (digits.size() <= places)
                    digits.insert(0, places + 1 - digits.size(), '0');
                digits.insert(digits.size() - places, ".");
            }
            return {K::number, negative ? "-" + digits : digits};
        }
        case AMQP_FIELD_KIND_TABLE: {
            std::string out = "{";
            for (int i = 0; i < v.value.table.num_entries; ++i) {
                if (i > 0)
                    out += ',';
                append_json_string(out, as_view(v.value.table.entries[i].key));
                out += ':';
                append_field_json(out, v.value.table.entries[i].value);
            }
            return {K::json, out + "}"};
        }
        case AMQP_FIELD_KIND_ARRAY: {
            std::string out = "[";
            for (int i = 0; i < v.value.array.num_entries; ++i) {
                if (i > 0)
                    out += ',';
                append_field_json(out, v.value.array.entries[i]);
            }
            return {K::json, out + "]"};
        }
        case AMQP_FIELD_KIND_VOID:
        default:
            return {K::json, ""};
    }
}

std::optional<HeaderValue> find_header_in_table(const void* headers, std::string_view name) {
    const auto* table = static_cast<const amqp_table_t*>(headers);
    for (int i = 0; i < table->num_entries; ++i) {
        if (as_view(table->entries[i].key) != name)
            continue;
        if (table->entries[i].value.kind == AMQP_FIELD_KIND_VOID)
            return std::nullopt;
        return convert_field(table->entries[i].value);
    }
    return std::nullopt;
}

// A delivery's bytes copied out of rabbitmq-c's connection buffers (recycled before the next
// read) into one block the Delivery owns. rabbitmq-c's own envelope costs five allocations and a
// zeroed 4 KiB pool page per message: a fifth of the daemon's instructions in the profile.
struct OwnedDelivery {
    std::string bytes;  // exchange, routing key, property strings, body
    amqp_basic_properties_t properties{};
    amqp_pool_t headers_pool{};  // only for messages with headers
    bool headers_pooled = false;

    OwnedDelivery() = default;
    OwnedDelivery(const OwnedDelivery&) = delete;
    OwnedDelivery& operator=(const OwnedDelivery&) = delete;
    ~OwnedDelivery() {
        if (headers_pooled)
            empty_amqp_pool(&headers_pool);
    }
};

void destroy_owned_delivery(void* p) {
    delete static_cast<OwnedDelivery*>(p);
}

// The string-valued basic properties, each kept (with its flag) when the message has it.
constexpr std::pair<amqp_flags_t, amqp_bytes_t amqp_basic_properties_t::*> kBytesProperties[] = {
    {AMQP_BASIC_CONTENT_TYPE_FLAG, &amqp_basic_properties_t::content_type},
    {AMQP_BASIC_CONTENT_ENCODING_FLAG, &amqp_basic_properties_t::content_encoding},
    {AMQP_BASIC_CORRELATION_ID_FLAG, &amqp_basic_properties_t::correlation_id},
    {AMQP_BASIC_REPLY_TO_FLAG, &amqp_basic_properties_t::reply_to},
    {AMQP_BASIC_EXPIRATION_FLAG, &amqp_basic_properties_t::expiration},
    {AMQP_BASIC_MESSAGE_ID_FLAG, &amqp_basic_properties_t::message_id},
    {AMQP_BASIC_TYPE_FLAG, &amqp_basic_properties_t::type},
    {AMQP_BASIC_USER_ID_FLAG, &amqp_basic_properties_t::user_id},
    {AMQP_BASIC_APP_ID_FLAG, &amqp_basic_properties_t::app_id},
    {AMQP_BASIC_CLUSTER_ID_FLAG, &amqp_basic_properties_t::cluster_id},
};

std::string server_close_text(const amqp_rpc_reply_t& reply, AmqpError::Kind& kind) {
    std::ostringstream text;
    if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        text << "broker closed the connection: " << m->reply_code << " " << as_view(m->reply_text);
        // 403 ACCESS_REFUSED (user/password), 530 NOT_ALLOWED (vhost): fixing config is needed.
        kind = (m->reply_code == 403 || m->reply_code == 530) ? AmqpError::Kind::refused
                                                              : AmqpError::Kind::connection;
    } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
        text << "broker closed the channel: " << m->reply_code << " " << as_view(m->reply_text);
        kind = m->reply_code == 403   ? AmqpError::Kind::refused
               : m->reply_code == 406 ? AmqpError::Kind::conflict
                                      : AmqpError::Kind::channel;
    } else {
        text << "unexpected server method 0x" << std::hex << reply.reply.id;
        kind = AmqpError::Kind::connection;
    }
    return text.str();
}

// ---- TLS (amqps://): rabbitmq-c's OpenSSL socket, plus what it does not tell us.

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

// What OpenSSL queued for this thread's last failed call ("tlsv13 alert certificate
// required"), or "" when it queued nothing. Clears the queue.
std::string openssl_reason() {
    unsigned long code = ERR_peek_last_error();
    const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
    ERR_clear_error();
    return reason != nullptr ? reason : "";
}

// rabbitmq-c's text for a status, with OpenSSL's reason where rabbitmq-c only says "SSL error".
std::string library_error_text(int status) {
    std::string text = amqp_error_string2(status);
    if (status == AMQP_STATUS_SSL_ERROR || status == AMQP_STATUS_SSL_CONNECTION_FAILED) {
        std::string reason = openssl_reason();
        if (!reason.empty())
            text += ": " + reason;
        // An alert about a certificate comes from the broker judging ours (TLS 1.3 sends it
        // after our side of the handshake finished, so it surfaces at the first read).
        if (reason.find("alert") != std::string::npos &&
            (reason.find("certificate") != std::string::npos ||
             reason.find("unknown ca") != std::string::npos))
            text += " (the broker refused our client certificate: see amqp.tls.cert_file)";
    }
    return text;
}

// Why the broker's certificate was refused, and what to look at.
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

bool is_ip_address(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A TLS socket set up from amqp.tls. Verification is on unless the config turns it off.
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

}  // namespace

struct AmqpSession::Connection {
    amqp_connection_state_t state = nullptr;
    bool logged_in = false;
    bool confirms = false;
    ~Connection() {
        if (state == nullptr)
            return;
        // A polite close, bounded by the RPC timeout; a broken socket just fails it.
        if (logged_in)
            amqp_connection_close(state, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(state);
    }
};

AmqpSession::AmqpSession(const AmqpUrl& url, int heartbeat_s, const std::string& connection_name)
    : connection_(std::make_unique<Connection>()) {
    description_ = url.host + ":" + std::to_string(url.port) + " vhost '" + url.vhost + "'";
    if (url.tls)
        description_ += " (TLS)";
    connection_->state = amqp_new_connection();
    if (connection_->state == nullptr)
        throw AmqpError(AmqpError::Kind::connection, "out of memory creating a connection");
    amqp_socket_t* socket =
        url.tls ? new_tls_socket(connection_->state, url) : amqp_tcp_socket_new(connection_->state);
    if (socket == nullptr)
        throw AmqpError(AmqpError::Kind::connection, "cannot create a TCP socket");
    timeval connect_timeout{kConnectTimeoutS, 0};
    tls_verify_problem.clear();
    ERR_clear_error();
    int status = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &connect_timeout);
    if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
        status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
        // Retrying will not help until a certificate or amqp.tls changes: "refused".
        throw AmqpError(AmqpError::Kind::refused,
                        "TLS certificate verification of " + description_ +
                            " failed: " + tls_verify_failure(status, url));
    }
    if (status == AMQP_STATUS_SSL_CONNECTION_FAILED) {
        std::string text = library_error_text(status);
        if (text.find("alert") == std::string::npos)  // no word from the peer: not TLS at all?
            text += " (is it a TLS port?)";
        throw AmqpError(AmqpError::Kind::connection,
                        "TLS handshake with " + description_ + " failed: " + text);
    }
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection,
                        "cannot connect to " + description_ + ": " + library_error_text(status));
    timeval rpc_timeout{kRpcTimeoutS, 0};
    amqp_set_rpc_timeout(connection_->state, &rpc_timeout);

    // Ask the broker to tell us when it cancels our consumer (queue deleted, node down) and
    // when it blocks publishers (memory/disk alarm); rabbitmq-c merges these with its own.
    amqp_table_entry_t capability_entries[2];
    capability_entries[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    capability_entries[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability_entries[0].value.value.boolean = 1;
    capability_entries[1].key = amqp_cstring_bytes("connection.blocked");
    capability_entries[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability_entries[1].value.value.boolean = 1;
    amqp_table_entry_t properties[2];
    properties[0].key = amqp_cstring_bytes("connection_name");
    properties[0].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[0].value.value.bytes = as_bytes(connection_name);
    properties[1].key = amqp_cstring_bytes("capabilities");
    properties[1].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[1].value.value.table = amqp_table_t{2, capability_entries};
    amqp_table_t client_properties{2, properties};
    int heartbeat = url.heartbeat_s >= 0 ? url.heartbeat_s : heartbeat_s;
    // channel_max 0 = broker's limit; frame_max 131072 = RabbitMQ's default.
    amqp_rpc_reply_t reply = amqp_login_with_properties(
        connection_->state, url.vhost.c_str(), 0, 131072, heartbeat, &client_properties,
        AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str());
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        reply.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
        throw AmqpError(AmqpError::Kind::refused,
                        "login to " + description_ + " as '" + url.user +
                            "' refused: check the user, password and vhost");
    }
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
        AmqpError::Kind kind;
        std::string text = server_close_text(reply, kind);
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_ok_t ok{};
            amqp_send_method(connection_->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        }
        throw AmqpError(kind, "login to " + description_ + " as '" + url.user + "': " + text);
    }
    check_reply(reply, "login");
    connection_->logged_in = true;
    amqp_channel_open(connection_->state, kChannel);
    check_rpc("channel.open");
}

AmqpSession::~AmqpSession() = default;

void AmqpSession::send_heartbeat() {
    amqp_frame_t frame{};
    frame.frame_type = AMQP_FRAME_HEARTBEAT;
    frame.channel = 0;
    int status = amqp_send_frame(connection_->state, &frame);
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection,
                        "heartbeat to " + description_ + ": " + library_error_text(status));
}

std::chrono::seconds AmqpSession::heartbeat_interval() const {
    return std::chrono::seconds(amqp_get_heartbeat(connection_->state));
}

void AmqpSession::check_rpc(const char* operation) {
    check_reply(amqp_get_rpc_reply(connection_->state), operation);
}

void AmqpSession::check_reply(const amqp_rpc_reply_t& reply, const char* operation) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return;
        case AMQP_RESPONSE_NONE:
            throw AmqpError(AmqpError::Kind::connection,
                            std::string(operation) + " on " + description_ + ": no reply");
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            connection_->logged_in = reply.library_error != AMQP_STATUS_SOCKET_ERROR &&
                                     reply.library_error != AMQP_STATUS_CONNECTION_CLOSED &&
                                     reply.library_error != AMQP_STATUS_HEARTBEAT_TIMEOUT &&
                                     reply.library_error != AMQP_STATUS_SSL_ERROR;
            throw AmqpError(AmqpError::Kind::connection,
                            std::string(operation) + " on " + description_ + ": " +
                                library_error_text(reply.library_error));
        case AMQP_RESPONSE_SERVER_EXCEPTION: {
            AmqpError::Kind kind;
            std::string text = server_close_text(reply, kind);
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                amqp_connection_close_ok_t ok{};
                amqp_send_method(connection_->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                connection_->logged_in = false;
            } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                amqp_channel_close_ok_t ok{};
                amqp_send_method(connection_->state, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            }
            throw AmqpError(kind, std::string(operation) + " on " + description_ + ": " + text);
        }
    }
}

void AmqpSession::declare_durable_queue(const std::string& queue) {
    amqp_queue_declare(connection_->state, kChannel, as_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    check_rpc(("queue.declare '" + queue + "'").c_str());
}

namespace {

// The config's typed arguments as an AMQP field table; `entries` owns the array.
amqp_table_t to_table(const std::vector<AmqpArgument>& arguments,
                      std::vector<amqp_table_entry_t>& entries) {
    entries.clear();
    for (const auto& argument : arguments) {
        amqp_table_entry_t entry{};
        entry.key = as_bytes(argument.name);
        switch (argument.type) {
            case AmqpArgument::Type::integer:
                entry.value.kind = AMQP_FIELD_KIND_I64;
                entry.value.value.i64 = argument.integer;
                break;
            case AmqpArgument::Type::boolean:
                entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
                entry.value.value.boolean = argument.boolean ? 1 : 0;
                break;
            case AmqpArgument::Type::string:
                entry.value.kind = AMQP_FIELD_KIND_UTF8;
                entry.value.value.bytes = as_bytes(argument.text);
                break;
        }
        entries.push_back(entry);
    }
    return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

}  // namespace

void AmqpSession::ensure_queue(const std::string& queue) {
    try {
        inspect_queue(queue);
        return;
    } catch (const AmqpError& e) {
        if (e.kind() != AmqpError::Kind::channel)
            throw;
    }
    // The broker closed the channel (404 NOT_FOUND) and check_reply answered close-ok: open it
    // again for the declaration.
    amqp_channel_open(connection_->state, kChannel);
    check_rpc("channel.open");
    declare_durable_queue(queue);
}

void AmqpSession::declare_exchange(const ExchangeConfig& exchange) {
    amqp_exchange_declare(connection_->state, kChannel, as_bytes(exchange.name),
                          as_bytes(exchange.type), 0, exchange.durable ? 1 : 0, 0, 0,
                          amqp_empty_table);
    check_rpc(("exchange.declare '" + exchange.name + "'").c_str());
}

void AmqpSession::declare_queue(const std::string& queue, const QueueDeclaration& declaration) {
    if (declaration.passive) {
        inspect_queue(queue);
        return;
    }
    std::vector<AmqpArgument> arguments = declaration.arguments;
    auto add = [&](const char* name, const std::string& value) {
        bool given = false;
        for (const auto& a : arguments)
            given = given || a.name == name;
        if (!given && !value.empty()) {
            AmqpArgument a;
            a.name = name;
            a.text = value;
            arguments.push_back(a);
        }
    };
    if (declaration.type != "classic")
        add("x-queue-type", declaration.type);
    add("x-dead-letter-exchange", declaration.dead_letter_exchange);
    std::vector<amqp_table_entry_t> entries;
    amqp_queue_declare(connection_->state, kChannel, as_bytes(queue), 0,
                       declaration.durable ? 1 : 0, 0, 0, to_table(arguments, entries));
    check_rpc(("queue.declare '" + queue + "'").c_str());
    for (const auto& binding : declaration.bindings) {
        amqp_queue_bind(connection_->state, kChannel, as_bytes(queue), as_bytes(binding.exchange),
                        as_bytes(binding.routing_key), to_table(binding.arguments, entries));
        check_rpc(("queue.bind '" + queue + "' to exchange '" + binding.exchange +
                   "' with routing key '" + binding.routing_key + "'")
                      .c_str());
    }
}

QueueState AmqpSession::inspect_queue(const std::string& queue) {
    auto* ok = amqp_queue_declare(connection_->state, kChannel, as_bytes(queue), 1, 0, 0, 0,
                                  amqp_empty_table);
    check_rpc(("queue.declare passive '" + queue + "'").c_str());
    return QueueState{ok->message_count, ok->consumer_count};
}

void AmqpSession::start_consuming(const std::string& queue, std::uint16_t prefetch,
                                  const std::string& consumer_tag, std::optional<int> priority) {
    amqp_basic_qos(connection_->state, kChannel, 0, prefetch, 0);
    check_rpc("basic.qos");
    amqp_table_entry_t priority_entry{};
    priority_entry.key = amqp_cstring_bytes("x-priority");
    priority_entry.value.kind = AMQP_FIELD_KIND_I32;
    priority_entry.value.value.i32 = priority.value_or(0);
    amqp_table_t arguments = amqp_empty_table;
    if (priority) {
        arguments.num_entries = 1;
        arguments.entries = &priority_entry;
    }
    amqp_basic_consume(connection_->state, kChannel, as_bytes(queue), as_bytes(consumer_tag), 0, 0,
                       0, arguments);
    check_rpc(("basic.consume on queue '" + queue + "'").c_str());
}

std::optional<Delivery> AmqpSession::next_delivery(std::chrono::milliseconds timeout) {
    amqp_maybe_release_buffers(connection_->state);
    timeval tv = to_timeval(timeout);
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(connection_->state, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT)
        return std::nullopt;
    if (status != AMQP_STATUS_OK) {
        connection_->logged_in = false;
        throw AmqpError(AmqpError::Kind::connection,
                        "consuming from " + description_ + ": " + amqp_error_string2(status));
    }
    if (frame.frame_type != AMQP_FRAME_METHOD ||
        frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
        handle_frame(frame);
        return std::nullopt;
    }
    const amqp_channel_t channel = frame.channel;
    const auto* deliver = static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
    auto owned = std::make_unique<OwnedDelivery>();
    Delivery d;
    d.delivery_tag = deliver->delivery_tag;
    d.redelivered = deliver->redelivered != 0;
    // Offsets, not views, until every byte is in: appending may move the block.
    std::string& bytes = owned->bytes;
    bytes.append(as_view(deliver->exchange));
    const std::size_t routing_key_at = bytes.size();
    bytes.append(as_view(deliver->routing_key));
    const std::size_t properties_at = bytes.size();

    read_content_frame(channel, frame, "content header");
    if (frame.frame_type != AMQP_FRAME_HEADER) {
        connection_->logged_in = false;
        throw AmqpError(AmqpError::Kind::connection,
                        "consuming from " + description_ + ": a delivery without its header");
    }
    const std::size_t body_size = frame.payload.properties.body_size;
    amqp_basic_properties_t& properties = owned->properties;
    properties = *static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
    std::size_t property_bytes = 0;
    for (const auto& [flag, field] : kBytesProperties)
        if (properties._flags & flag)
            property_bytes += (properties.*field).len;
    bytes.reserve(properties_at + property_bytes + body_size);
    for (const auto& [flag, field] : kBytesProperties)
        if (properties._flags & flag)
            bytes.append(as_view(properties.*field));
    if (properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        amqp_table_t headers = properties.headers;
        init_amqp_pool(&owned->headers_pool, 1024);
        owned->headers_pooled = true;
        if (amqp_table_clone(&headers, &properties.headers, &owned->headers_pool) != AMQP_STATUS_OK)
            throw AmqpError(AmqpError::Kind::connection,
                            "consuming from " + description_ + ": out of memory for headers");
    }
    const std::size_t body_at = bytes.size();
    while (bytes.size() - body_at < body_size) {
        read_content_frame(channel, frame, "content body");
        if (frame.frame_type != AMQP_FRAME_BODY) {
            connection_->logged_in = false;
            throw AmqpError(AmqpError::Kind::connection,
                            "consuming from " + description_ + ": a delivery's body was cut short");
        }
        bytes.append(as_view(frame.payload.body_fragment));
        // rabbitmq-c takes each frame from the channel's pool and keeps the pool's pages when it
        // is recycled: without a release per copied frame, one 64 MiB body would leave 64 MiB
        // of pages to this connection for good.
        amqp_maybe_release_buffers_on_channel(connection_->state, channel);
    }

    // Every byte is in place: point the views and the properties at them.
    const char* base = bytes.data();
    d.exchange = std::string_view(base, routing_key_at);
    d.routing_key = std::string_view(base + routing_key_at, properties_at - routing_key_at);
    std::size_t at = properties_at;
    for (const auto& [flag, field] : kBytesProperties) {
        if (properties._flags & flag) {
            (properties.*field).bytes = const_cast<char*>(base + at);
            at += (properties.*field).len;
        }
    }
    d.body = std::string_view(base + body_at, bytes.size() - body_at);
    if (properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        d.message_id = as_view(properties.message_id);
    if (properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        d.content_type = as_view(properties.content_type);
    if (properties._flags & AMQP_BASIC_TIMESTAMP_FLAG)
        d.timestamp = static_cast<std::int64_t>(properties.timestamp);
    if ((properties._flags & AMQP_BASIC_HEADERS_FLAG) && properties.headers.num_entries > 0) {
        d.headers = &properties.headers;
        d.find_header = find_header_in_table;
    }
    d.owner = std::unique_ptr<void, void (*)(void*)>(owned.release(), destroy_owned_delivery);
    return d;
}

// The next frame of the delivery in progress on `channel`; frames for other channels are
// handled as they come (the content frames of one channel are contiguous, others may interleave).
void AmqpSession::read_content_frame(amqp_channel_t channel, amqp_frame_t& frame,
                                     const char* what) {
    while (true) {
        timeval tv{kRpcTimeoutS, 0};
        int status = amqp_simple_wait_frame_noblock(connection_->state, &frame, &tv);
        if (status != AMQP_STATUS_OK) {
            connection_->logged_in = false;
            throw AmqpError(AmqpError::Kind::connection,
                            "reading a delivery's " + std::string(what) + " from " + description_ +
                                ": " + amqp_error_string2(status));
        }
        if (frame.channel == channel)
            return;
        handle_frame(frame);
    }
}

// A frame other than a delivery arrived while consuming: the broker telling us something.
void AmqpSession::handle_frame(const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return;
    switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
        case AMQP_BASIC_NACK_METHOD:
            return;
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t message;
            amqp_rpc_reply_t r = amqp_read_message(connection_->state, frame.channel, &message, 0);
            if (r.reply_type == AMQP_RESPONSE_NORMAL)
                amqp_destroy_message(&message);
            return;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
            std::string text = "broker closed the channel on " + description_ + ": " +
                               std::to_string(m->reply_code) + " " +
                               std::string(as_view(m->reply_text));
            amqp_channel_close_ok_t ok{};
            amqp_send_method(connection_->state, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            throw AmqpError(AmqpError::Kind::channel, text);
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
            std::string text = "broker closed the connection " + description_ + ": " +
                               std::to_string(m->reply_code) + " " +
                               std::string(as_view(m->reply_text));
            amqp_connection_close_ok_t ok{};
            amqp_send_method(connection_->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            connection_->logged_in = false;
            throw AmqpError(AmqpError::Kind::connection, text);
        }
        case AMQP_BASIC_CANCEL_METHOD:
            throw AmqpError(AmqpError::Kind::channel, "broker cancelled the consumer on " +
                                                          description_ +
                                                          " (queue deleted or node down)");
        case AMQP_CONNECTION_BLOCKED_METHOD:
            blocked_ = true;
            return;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            blocked_ = false;
            return;
        default:
            return;
    }
}

void AmqpSession::ack_up_to(std::uint64_t delivery_tag) {
    int status = amqp_basic_ack(connection_->state, kChannel, delivery_tag, 1);
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection,
                        "basic.ack up to " + std::to_string(delivery_tag) + " on " + description_ +
                            ": " + amqp_error_string2(status));
}

void AmqpSession::ack_one(std::uint64_t delivery_tag) {
    int status = amqp_basic_ack(connection_->state, kChannel, delivery_tag, 0);
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection, "basic.ack " + std::to_string(delivery_tag) +
                                                         " on " + description_ + ": " +
                                                         amqp_error_string2(status));
}

void AmqpSession::reject(std::uint64_t delivery_tag, bool requeue) {
    int status = amqp_basic_nack(connection_->state, kChannel, delivery_tag, 0, requeue ? 1 : 0);
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection, "basic.nack " + std::to_string(delivery_tag) +
                                                         " on " + description_ + ": " +
                                                         amqp_error_string2(status));
}

void AmqpSession::enable_confirms() {
    if (connection_->confirms)
        return;
    amqp_confirm_select(connection_->state, kChannel);
    check_rpc("confirm.select");
    connection_->confirms = true;
}

namespace {

amqp_basic_properties_t with_headers(amqp_basic_properties_t properties,
                                     const amqp_table_t* original_headers,
                                     const std::vector<std::pair<std::string, std::string>>& extra,
                                     std::vector<amqp_table_entry_t>& entries) {
    // Original headers first, except the ones about to be set (a message dead-lettered twice
    // keeps only the latest reason).
    entries.clear();
    if (original_headers != nullptr) {
        for (int i = 0; i < original_headers->num_entries; ++i) {
            std::string_view key = as_view(original_headers->entries[i].key);
            bool replaced = false;
            for (const auto& [name, value] : extra)
                replaced = replaced || key == name;
            if (!replaced)
                entries.push_back(original_headers->entries[i]);
        }
    }
    for (const auto& [name, value] : extra) {
        amqp_table_entry_t entry{};
        entry.key = as_bytes(name);
        entry.value.kind = AMQP_FIELD_KIND_UTF8;
        entry.value.value.bytes = as_bytes(value);
        entries.push_back(entry);
    }
    if (!entries.empty()) {
        properties._flags |= AMQP_BASIC_HEADERS_FLAG;
        properties.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
    }
    if (!(properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)) {
        properties._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    return properties;
}

}  // namespace

void AmqpSession::publish_confirmed(
    const std::string& exchange, const std::string& routing_key, const Delivery& original,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    enable_confirms();
    amqp_basic_properties_t properties{};
    const amqp_table_t* original_headers = nullptr;
    if (original.owner) {
        properties = static_cast<const OwnedDelivery*>(original.owner.get())->properties;
        if (properties._flags & AMQP_BASIC_HEADERS_FLAG)
            original_headers = &properties.headers;
        properties._flags &= ~AMQP_BASIC_HEADERS_FLAG;
    }
    std::vector<amqp_table_entry_t> entries;
    properties = with_headers(properties, original_headers, extra_headers, entries);
    amqp_bytes_t body{original.body.size(), const_cast<char*>(original.body.data())};
    std::string what = "exchange '" + exchange + "' routing key '" + routing_key + "'";
    int status = amqp_basic_publish(connection_->state, kChannel, as_bytes(exchange),
                                    as_bytes(routing_key), /*mandatory=*/1, 0, &properties, body);
    if (status == AMQP_STATUS_TABLE_TOO_BIG || status == AMQP_STATUS_BAD_AMQP_DATA)
        throw AmqpError(AmqpError::Kind::unpublishable,
                        "cannot publish to " + what + ": " + amqp_error_string2(status));
    if (status != AMQP_STATUS_OK)
        throw AmqpError(
            AmqpError::Kind::connection,
            "publishing to " + what + " on " + description_ + ": " + amqp_error_string2(status));
    if (await_confirms(next_publish_seq_++, what))
        throw AmqpError(AmqpError::Kind::publish, "no queue is bound to " + what);
}

void AmqpSession::publish(const std::string& exchange, const std::string& routing_key,
                          const OutgoingMessage& message) {
    enable_confirms();
    amqp_basic_properties_t properties{};
    if (!message.message_id.empty()) {
        properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        properties.message_id =
            amqp_bytes_t{message.message_id.size(), const_cast<char*>(message.message_id.data())};
    }
    if (!message.content_type.empty()) {
        properties._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        properties.content_type = amqp_bytes_t{message.content_type.size(),
                                               const_cast<char*>(message.content_type.data())};
    }
    if (message.timestamp) {
        properties._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        properties.timestamp = static_cast<std::uint64_t>(*message.timestamp);
    }
    std::vector<amqp_table_entry_t> entries;
    properties = with_headers(properties, nullptr, message.headers, entries);
    amqp_bytes_t body{message.body.size(), const_cast<char*>(message.body.data())};
    int status = amqp_basic_publish(connection_->state, kChannel, as_bytes(exchange),
                                    as_bytes(routing_key), /*mandatory=*/1, 0, &properties, body);
    if (status != AMQP_STATUS_OK)
        throw AmqpError(AmqpError::Kind::connection, "publishing to exchange '" + exchange +
                                                         "' on " + description_ + ": " +
                                                         amqp_error_string2(status));
    ++next_publish_seq_;
}

void AmqpSession::wait_for_confirms() {
    if (next_publish_seq_ > 1 && await_confirms(next_publish_seq_ - 1, "the published messages"))
        throw AmqpError(AmqpError::Kind::publish, "a published message was unroutable");
}

std::uint64_t AmqpSession::collect_confirms() {
    if (next_publish_seq_ > 1 &&
        await_confirms(next_publish_seq_ - 1, "the published messages", /*block=*/false))
        throw AmqpError(AmqpError::Kind::publish, "a published message was unroutable");
    return next_publish_seq_ - 1 - confirmed_up_to_;
}

bool AmqpSession::await_confirms(std::uint64_t seq, const std::string& what, bool block) {
    bool returned = false;
    while (confirmed_up_to_ < seq) {
        amqp_frame_t frame;
        timeval timeout{block ? kRpcTimeoutS : 0, 0};
        int status = amqp_simple_wait_frame_noblock(connection_->state, &frame, &timeout);
        if (status == AMQP_STATUS_TIMEOUT && !block)
            break;
        if (status != AMQP_STATUS_OK) {
            connection_->logged_in = false;
            throw AmqpError(AmqpError::Kind::connection, "waiting for the publisher confirm of " +
                                                             what + " on " + description_ + ": " +
                                                             amqp_error_string2(status));
        }
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                if (ack->multiple) {
                    confirmed_up_to_ = std::max(confirmed_up_to_, ack->delivery_tag);
                } else {
                    confirmed_ahead_.push_back(ack->delivery_tag);
                }
                // Single acks may arrive out of order: advance over the contiguous ones.
                bool advanced = true;
                while (advanced) {
                    advanced = false;
                    for (auto it = confirmed_ahead_.begin(); it != confirmed_ahead_.end(); ++it) {
                        if (*it <= confirmed_up_to_ + 1) {
                            confirmed_up_to_ = std::max(confirmed_up_to_, *it);
                            confirmed_ahead_.erase(it);
                            advanced = true;
                            break;
                        }
                    }
                }
                continue;
            }
            case AMQP_BASIC_NACK_METHOD:
                throw AmqpError(AmqpError::Kind::publish,
                                "broker refused (nack) the publish to " + what);
            case AMQP_BASIC_RETURN_METHOD: {
                returned = true;
                amqp_message_t message;
                amqp_rpc_reply_t r =
                    amqp_read_message(connection_->state, frame.channel, &message, 0);
                if (r.reply_type == AMQP_RESPONSE_NORMAL)
                    amqp_destroy_message(&message);
                continue;
            }
            case AMQP_CHANNEL_CLOSE_METHOD: {
                auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
                std::string text = "broker closed the publishing channel on " + description_ +
                                   ": " + std::to_string(m->reply_code) + " " +
                                   std::string(as_view(m->reply_text));
                amqp_channel_close_ok_t ok{};
                amqp_send_method(connection_->state, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
                                 &ok);
                throw AmqpError(AmqpError::Kind::channel, text);
            }
            case AMQP_CONNECTION_CLOSE_METHOD:
                connection_->logged_in = false;
                throw AmqpError(
                    AmqpError::Kind::connection,
                    "broker closed the connection " + description_ + " while publishing");
            default:
                continue;
        }
    }
    return returned;
}

}  // namespace rmq2pg
