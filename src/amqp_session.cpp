// rabbitmq-c behind AmqpSession: connect and log in, declare, consume, ack. Design: every status
// goes through check()/status_error() and every server close through server_closed(), which map
// rabbitmq-c's three reply kinds (normal, library exception, server channel/connection close)
// onto AmqpError kinds that say what the caller does next. Deliveries are read in
// amqp_delivery.cpp, publishes in amqp_publish.cpp, TLS set up in amqp_tls.cpp.
#include "amqp_session.h"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>

#include "amqp_fields.h"
#include "amqp_internal.h"
#include "amqp_tls.h"

namespace rmq2pg {

AmqpConnection::~AmqpConnection() {
    if (state == nullptr)
        return;
    // A polite close, bounded by the RPC timeout; a broken socket just fails it.
    if (logged_in)
        amqp_connection_close(state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state);
}

AmqpError status_error(AmqpConnection& connection, int status, std::string_view operation,
                       StatusFrom from) {
    std::string text = amqp_error_string2(status);
    if (status == AMQP_STATUS_SSL_ERROR || status == AMQP_STATUS_SSL_CONNECTION_FAILED) {
        // rabbitmq-c only says "SSL error": OpenSSL knows why.
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
    text = std::string(operation) + " " + connection.description + ": " + text;
    if (from == StatusFrom::encoding)
        return AmqpError(AmqpError::Kind::unpublishable, text);
    connection.logged_in = false;
    return AmqpError(AmqpError::Kind::connection, text);
}

void check(AmqpConnection& connection, const amqp_rpc_reply_t& reply, std::string_view operation) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return;
        case AMQP_RESPONSE_NONE:
            throw AmqpError(AmqpError::Kind::connection,
                            std::string(operation) + " " + connection.description + ": no reply");
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw status_error(connection, reply.library_error, operation);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            server_closed(connection, reply.reply, kChannel, operation, CloseArrived::as_reply);
    }
    throw AmqpError(AmqpError::Kind::connection,
                    std::string(operation) + " " + connection.description + ": unknown reply");
}

void server_closed(AmqpConnection& connection, const amqp_method_t& close, amqp_channel_t channel,
                   std::string_view operation, CloseArrived arrived) {
    std::string where = std::string(operation) + " " + connection.description;
    if (close.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<const amqp_connection_close_t*>(close.decoded);
        amqp_connection_close_ok_t ok{};
        amqp_send_method(connection.state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        connection.logged_in = false;
        // 403 ACCESS_REFUSED (user/password), 530 NOT_ALLOWED (vhost): fixing config is needed.
        auto kind = m->reply_code == 403 || m->reply_code == 530 ? AmqpError::Kind::refused
                                                                 : AmqpError::Kind::connection;
        throw AmqpError(
            kind, where + ": broker closed the connection: " + std::to_string(m->reply_code) + " " +
                      std::string(as_view(m->reply_text)));
    }
    if (close.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<const amqp_channel_close_t*>(close.decoded);
        amqp_channel_close_ok_t ok{};
        amqp_send_method(connection.state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        // A 406 answering our request names an argument that differs from what exists. One that
        // arrives unprompted is about the channel's own state (the broker's consumer_timeout
        // expired on an unacked delivery, an unknown delivery tag): a new channel clears it,
        // and pausing the pipeline as for a conflict would stop it until a restart.
        auto kind = m->reply_code == 403 ? AmqpError::Kind::refused
                    : m->reply_code == 406 && arrived == CloseArrived::as_reply
                        ? AmqpError::Kind::conflict
                        : AmqpError::Kind::channel;
        throw AmqpChannelError(kind,
                               where +
                                   ": broker closed the channel: " + std::to_string(m->reply_code) +
                                   " " + std::string(as_view(m->reply_text)),
                               channel, false);
    }
    connection.logged_in = false;
    throw AmqpError(AmqpError::Kind::connection,
                    where + ": unexpected server method " + std::to_string(close.id));
}

namespace {

void check_rpc(AmqpConnection& connection, std::string_view operation) {
    check(connection, amqp_get_rpc_reply(connection.state), operation);
}

// kChannel again after the broker closed it. Confirm mode belongs to the channel: a session
// that published before (a dead-letter connection shared by several pipelines, whose next
// "<queue>.dead" did not exist yet) selects it again and numbers its publishes from 1, or it
// would wait for confirms that never come.
void reopen_channel(AmqpConnection& connection) {
    amqp_channel_open(connection.state, kChannel);
    check_rpc(connection, "channel.open on");
    connection.confirms = false;
    connection.next_publish_seq = 1;
    connection.confirmed_up_to = 0;
    connection.confirmed_ahead.clear();
}

}  // namespace

AmqpSession::AmqpSession(const AmqpUrl& url, int heartbeat_s, const std::string& connection_name)
    : connection_(std::make_unique<AmqpConnection>()) {
    AmqpConnection& connection = *connection_;
    connection.description = url.host + ":" + std::to_string(url.port) + " vhost '" + url.vhost +
                             "'" + (url.tls ? " (TLS)" : "");
    connection.state = amqp_new_connection();
    if (connection.state == nullptr)
        throw AmqpError(AmqpError::Kind::connection, "out of memory creating a connection");
    amqp_socket_t* socket =
        url.tls ? new_tls_socket(connection.state, url) : amqp_tcp_socket_new(connection.state);
    if (socket == nullptr)
        throw AmqpError(AmqpError::Kind::connection, "cannot create a TCP socket");
    timeval connect_timeout{kConnectTimeoutS, 0};
    clear_tls_errors();
    int status = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &connect_timeout);
    if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
        status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
        // Retrying will not help until a certificate or amqp.tls changes: "refused".
        throw AmqpError(AmqpError::Kind::refused,
                        "TLS certificate verification of " + connection.description +
                            " failed: " + tls_verify_failure(status, url));
    }
    if (status == AMQP_STATUS_SSL_CONNECTION_FAILED) {
        AmqpError e = status_error(connection, status, "TLS handshake failed with");
        if (std::string_view(e.what()).find("alert") != std::string_view::npos)
            throw e;
        // No word from the peer: not TLS at all?
        throw AmqpError(e.kind(), std::string(e.what()) + " (is it a TLS port?)");
    }
    check(connection, status, "cannot connect to");
    timeval rpc_timeout{kRpcTimeoutS, 0};
    amqp_set_rpc_timeout(connection.state, &rpc_timeout);

    // Ask the broker to tell us when it cancels our consumer (queue deleted, node down);
    // rabbitmq-c merges this with its own capabilities.
    amqp_table_entry_t capability{};
    capability.key = amqp_cstring_bytes("consumer_cancel_notify");
    capability.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability.value.value.boolean = 1;
    amqp_table_entry_t properties[2];
    properties[0].key = amqp_cstring_bytes("connection_name");
    properties[0].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[0].value.value.bytes = as_bytes(connection_name);
    properties[1].key = amqp_cstring_bytes("capabilities");
    properties[1].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[1].value.value.table = amqp_table_t{1, &capability};
    amqp_table_t client_properties{2, properties};
    int heartbeat = url.heartbeat_s >= 0 ? url.heartbeat_s : heartbeat_s;
    // channel_max 0 = broker's limit; frame_max 131072 = RabbitMQ's default.
    amqp_rpc_reply_t reply = amqp_login_with_properties(
        connection.state, url.vhost.c_str(), 0, 131072, heartbeat, &client_properties,
        AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str());
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        reply.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
        // RabbitMQ answers bad credentials by closing the socket, without a word.
        throw AmqpError(AmqpError::Kind::refused,
                        "login to " + connection.description + " as '" + url.user +
                            "' refused: check the user, password and vhost");
    }
    check(connection, reply, "login as '" + url.user + "' to");
    connection.logged_in = true;
    amqp_channel_open(connection.state, kChannel);
    check_rpc(connection, "channel.open on");
}

AmqpSession::~AmqpSession() = default;

void AmqpSession::send_heartbeat() {
    amqp_frame_t frame{};
    frame.frame_type = AMQP_FRAME_HEARTBEAT;
    frame.channel = 0;
    check(*connection_, amqp_send_frame(connection_->state, &frame), "heartbeat to");
}

std::chrono::seconds AmqpSession::heartbeat_interval() const {
    return std::chrono::seconds(amqp_get_heartbeat(connection_->state));
}

void AmqpSession::declare_durable_queue(const std::string& queue) {
    amqp_queue_declare(connection_->state, kChannel, as_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    check_rpc(*connection_, "queue.declare '" + queue + "' on");
}

void AmqpSession::ensure_queue(const std::string& queue) {
    try {
        inspect_queue(queue);
        return;
    } catch (const AmqpError& e) {
        if (e.kind() != AmqpError::Kind::channel)
            throw;
    }
    // The broker closed the channel (404 NOT_FOUND) and server_closed() answered close-ok: open
    // it again for the declaration.
    reopen_channel(*connection_);
    declare_durable_queue(queue);
}

void AmqpSession::declare_exchange(const ExchangeConfig& exchange) {
    amqp_exchange_declare(connection_->state, kChannel, as_bytes(exchange.name),
                          as_bytes(exchange.type), 0, exchange.durable ? 1 : 0, 0, 0,
                          amqp_empty_table);
    check_rpc(*connection_, "exchange.declare '" + exchange.name + "' on");
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
    check_rpc(*connection_, "queue.declare '" + queue + "' on");
    for (const auto& binding : declaration.bindings) {
        amqp_queue_bind(connection_->state, kChannel, as_bytes(queue), as_bytes(binding.exchange),
                        as_bytes(binding.routing_key), to_table(binding.arguments, entries));
        check_rpc(*connection_, "queue.bind '" + queue + "' to exchange '" + binding.exchange +
                                    "' with routing key '" + binding.routing_key + "' on");
    }
}

QueueState AmqpSession::inspect_queue(const std::string& queue) {
    auto* ok = amqp_queue_declare(connection_->state, kChannel, as_bytes(queue), 1, 0, 0, 0,
                                  amqp_empty_table);
    check_rpc(*connection_, "queue.declare passive '" + queue + "' on");
    return QueueState{ok->message_count, ok->consumer_count};
}

std::optional<QueueState> AmqpSession::inspect_queue_if_exists(const std::string& queue) {
    try {
        return inspect_queue(queue);
    } catch (const AmqpError& e) {
        // 404 NOT_FOUND closes the channel (server_closed() answered close-ok); anything else
        // is the caller's to handle.
        if (e.kind() != AmqpError::Kind::channel ||
            std::string_view(e.what()).find(" 404 ") == std::string_view::npos)
            throw;
    }
    reopen_channel(*connection_);
    return std::nullopt;
}

void AmqpSession::start_consuming(const std::string& queue, std::uint16_t prefetch,
                                  const std::string& consumer_tag, std::optional<int> priority) {
    amqp_basic_qos(connection_->state, kChannel, 0, prefetch, 0);
    check_rpc(*connection_, "basic.qos on");
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
    check_rpc(*connection_, "basic.consume on queue '" + queue + "' on");
}

void AmqpSession::consume_stream(const std::string& stream, std::uint16_t prefetch,
                                 const std::string& consumer_tag, const StreamOffset& offset) {
    // global=0: RabbitMQ applies the prefetch to each consumer started after it.
    amqp_basic_qos(connection_->state, kChannel, 0, prefetch, 0);
    check_rpc(*connection_, "basic.qos on");
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes("x-stream-offset");
    switch (offset.kind) {
        case StreamOffset::Kind::text:
            entry.value.kind = AMQP_FIELD_KIND_UTF8;
            entry.value.value.bytes = as_bytes(offset.text);
            break;
        case StreamOffset::Kind::offset:
            entry.value.kind = AMQP_FIELD_KIND_I64;
            entry.value.value.i64 = offset.value;
            break;
        case StreamOffset::Kind::timestamp:
            entry.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
            entry.value.value.u64 =
                static_cast<std::uint64_t>(std::max<std::int64_t>(0, offset.value));
            break;
    }
    amqp_table_t arguments{1, &entry};
    amqp_basic_consume(connection_->state, kChannel, as_bytes(stream), as_bytes(consumer_tag), 0, 0,
                       0, arguments);
    check_rpc(*connection_, "basic.consume on stream '" + stream + "' on");
}

// The ack and nack texts are built only on failure: the worker acks every batch.
void AmqpSession::ack_up_to(std::uint64_t delivery_tag) {
    if (int status = amqp_basic_ack(connection_->state, kChannel, delivery_tag, 1);
        status != AMQP_STATUS_OK)
        throw status_error(*connection_, status,
                           "basic.ack up to " + std::to_string(delivery_tag) + " on");
}

void AmqpSession::ack_one(std::uint64_t delivery_tag) {
    if (int status = amqp_basic_ack(connection_->state, kChannel, delivery_tag, 0);
        status != AMQP_STATUS_OK)
        throw status_error(*connection_, status,
                           "basic.ack " + std::to_string(delivery_tag) + " on");
}

void AmqpSession::reject(std::uint64_t delivery_tag, bool requeue) {
    if (int status = amqp_basic_nack(connection_->state, kChannel, delivery_tag, 0, requeue);
        status != AMQP_STATUS_OK)
        throw status_error(*connection_, status,
                           "basic.nack " + std::to_string(delivery_tag) + " on");
}

void AmqpSession::give_back_unacked(const std::string& consumer_tag) {
    AmqpConnection& connection = *connection_;
    amqp_basic_cancel(connection.state, kChannel, as_bytes(consumer_tag));
    check_rpc(connection, "basic.cancel on");
    // Delivery tag 0 with multiple: every delivery of the channel not settled yet, including
    // those that arrived while the cancel was under way.
    if (int status = amqp_basic_nack(connection.state, kChannel, 0, 1, 1); status != AMQP_STATUS_OK)
        throw status_error(connection, status, "basic.nack (requeue all) on");
    // A synchronous method after the nack: its reply means the broker has handled the acks and
    // the nack before it, in order, so closing cannot overtake them.
    amqp_basic_qos(connection.state, kChannel, 0, 0, 0);
    check_rpc(connection, "basic.qos on");
}

}  // namespace rmq2pg
