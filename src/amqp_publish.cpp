// Publishing with publisher confirms: one message waited for (a worker's dead letters), or a
// window of them (the companion publisher and the benchmark). A message that cannot be encoded
// is refused before anything is sent, so the connection stays usable.
#include <algorithm>

#include "amqp_fields.h"
#include "amqp_internal.h"

namespace rmq2pg {
namespace {

void enable_confirms(AmqpConnection& connection) {
    if (connection.confirms)
        return;
    amqp_confirm_select(connection.state, kChannel);
    check(connection, amqp_get_rpc_reply(connection.state), "confirm.select on");
    connection.confirms = true;
}

std::string target(const std::string& exchange, const std::string& routing_key) {
    return "exchange '" + exchange + "' routing key '" + routing_key + "'";
}

// rabbitmq-c's amqp_basic_publish() sends the basic.publish frame before it encodes the content
// header, so a header that does not encode (a headers table larger than the frame:
// TABLE_TOO_BIG; a property over 255 bytes: BAD_AMQP_DATA) leaves the broker waiting for content
// that never comes, and the next frame on the channel closes the connection (505
// UNEXPECTED_FRAME). send_publish() encodes both frames first, into a buffer of the same size,
// and refuses such a message while nothing has been sent.
int encode_first(AmqpConnection& connection, amqp_basic_publish_t method,
                 amqp_basic_properties_t properties) {
    const auto frame_max = static_cast<std::size_t>(amqp_get_frame_max(connection.state));
    connection.encode_buffer.resize(frame_max);
    void* buffer = connection.encode_buffer.data();
    // A frame has 7 bytes of header and 1 of end; a method starts with its 4-byte id, a content
    // header with class id, weight and body size (12 bytes).
    constexpr std::size_t kFrameOverhead = 7 + 1;
    int status = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method,
                                    amqp_bytes_t{frame_max - kFrameOverhead - 4, buffer});
    if (status >= 0)
        status = amqp_encode_properties(AMQP_BASIC_CLASS, &properties,
                                        amqp_bytes_t{frame_max - kFrameOverhead - 12, buffer});
    return std::min(status, 0);  // both return the encoded length on success
}

// basic.publish (mandatory) with its content, after encode_first().
void send_publish(AmqpConnection& connection, const std::string& exchange,
                  const std::string& routing_key, const amqp_basic_properties_t& properties,
                  std::string_view body) {
    amqp_basic_publish_t method{};
    method.exchange = as_bytes(exchange);
    method.routing_key = as_bytes(routing_key);
    method.mandatory = 1;
    if (int status = encode_first(connection, method, properties); status != AMQP_STATUS_OK)
        throw status_error(connection, status,
                           "publishing to " + target(exchange, routing_key) + " on",
                           StatusFrom::encoding);
    if (int status =
            amqp_basic_publish(connection.state, kChannel, method.exchange, method.routing_key,
                               method.mandatory, 0, &properties, as_bytes(body));
        status != AMQP_STATUS_OK)
        throw status_error(connection, status,
                           "publishing to " + target(exchange, routing_key) + " on");
    connection.next_publish_seq++;
}

// Single acks may arrive out of order: advance confirmed_up_to over the contiguous ones.
void advance_confirmed(AmqpConnection& connection) {
    bool advanced = true;
    while (advanced) {
        advanced = false;
        auto& ahead = connection.confirmed_ahead;
        for (auto it = ahead.begin(); it != ahead.end(); ++it) {
            if (*it <= connection.confirmed_up_to + 1) {
                connection.confirmed_up_to = std::max(connection.confirmed_up_to, *it);
                ahead.erase(it);
                advanced = true;
                break;
            }
        }
    }
}

// Reads frames until every publish up to `seq` is confirmed (or, with `block` false, until no
// frame is waiting); true if any came back unroutable.
bool await_confirms(AmqpConnection& connection, std::uint64_t seq, const std::string& what,
                    bool block = true) {
    bool returned = false;
    while (connection.confirmed_up_to < seq) {
        amqp_frame_t frame;
        timeval timeout{block ? kRpcTimeoutS : 0, 0};
        int status = amqp_simple_wait_frame_noblock(connection.state, &frame, &timeout);
        if (status == AMQP_STATUS_TIMEOUT && !block)
            break;
        if (status != AMQP_STATUS_OK)
            throw status_error(connection, status,
                               "waiting for the publisher confirm of " + what + " on");
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                if (ack->multiple)
                    connection.confirmed_up_to =
                        std::max(connection.confirmed_up_to, ack->delivery_tag);
                else
                    connection.confirmed_ahead.push_back(ack->delivery_tag);
                advance_confirmed(connection);
                continue;
            }
            case AMQP_BASIC_NACK_METHOD:
                throw AmqpError(AmqpError::Kind::publish,
                                "broker refused (nack) the publish to " + what);
            case AMQP_BASIC_RETURN_METHOD: {
                returned = true;
                amqp_message_t message;
                amqp_rpc_reply_t r =
                    amqp_read_message(connection.state, frame.channel, &message, 0);
                if (r.reply_type == AMQP_RESPONSE_NORMAL)
                    amqp_destroy_message(&message);
                continue;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                server_closed(connection, frame.payload.method, frame.channel,
                              "waiting for the publisher confirm of " + what + " on",
                              CloseArrived::unprompted);
            default:
                continue;
        }
    }
    return returned;
}

}  // namespace

void AmqpSession::publish_confirmed(
    const std::string& exchange, const std::string& routing_key, const Delivery& original,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) {
    AmqpConnection& connection = *connection_;
    enable_confirms(connection);
    amqp_basic_properties_t properties{};
    const amqp_table_t* original_headers = nullptr;
    if (const amqp_basic_properties_t* received = delivery_properties(original)) {
        properties = *received;
        if (properties._flags & AMQP_BASIC_HEADERS_FLAG)
            original_headers = &received->headers;
        properties._flags &= ~AMQP_BASIC_HEADERS_FLAG;
    }
    std::vector<amqp_table_entry_t> entries;
    properties = with_headers(properties, original_headers, extra_headers, entries);
    send_publish(connection, exchange, routing_key, properties, original.body);
    std::string what = target(exchange, routing_key);
    if (await_confirms(connection, connection.next_publish_seq - 1, what))
        throw AmqpError(AmqpError::Kind::publish, "no queue is bound to " + what);
}

void AmqpSession::publish_copy(const std::string& exchange, const std::string& routing_key,
                               const Delivery& original, const std::vector<std::string>& drop,
                               const std::vector<std::pair<std::string, std::string>>& extra) {
    AmqpConnection& connection = *connection_;
    enable_confirms(connection);
    amqp_basic_properties_t properties{};
    amqp_table_t kept{0, nullptr};
    std::vector<amqp_table_entry_t> kept_entries;
    if (const amqp_basic_properties_t* received = delivery_properties(original)) {
        properties = *received;
        if (properties._flags & AMQP_BASIC_HEADERS_FLAG) {
            const amqp_table_t& headers = received->headers;
            for (int i = 0; i < headers.num_entries; ++i) {
                std::string_view key = as_view(headers.entries[i].key);
                if (std::find(drop.begin(), drop.end(), key) == drop.end())
                    kept_entries.push_back(headers.entries[i]);
            }
            kept = amqp_table_t{static_cast<int>(kept_entries.size()), kept_entries.data()};
        }
        properties._flags &= ~AMQP_BASIC_HEADERS_FLAG;
    }
    std::vector<amqp_table_entry_t> entries;
    properties = with_headers(properties, &kept, extra, entries);
    send_publish(connection, exchange, routing_key, properties, original.body);
}

void AmqpSession::publish(const std::string& exchange, const std::string& routing_key,
                          const OutgoingMessage& message) {
    AmqpConnection& connection = *connection_;
    enable_confirms(connection);
    amqp_basic_properties_t properties{};
    if (!message.message_id.empty()) {
        properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        properties.message_id = as_bytes(message.message_id);
    }
    if (!message.content_type.empty()) {
        properties._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        properties.content_type = as_bytes(message.content_type);
    }
    if (message.timestamp) {
        properties._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        properties.timestamp = static_cast<std::uint64_t>(*message.timestamp);
    }
    std::vector<amqp_table_entry_t> entries;
    properties = with_headers(properties, nullptr, message.headers, entries);
    send_publish(connection, exchange, routing_key, properties, message.body);
}

void AmqpSession::wait_for_confirms() {
    AmqpConnection& connection = *connection_;
    if (connection.next_publish_seq > 1 &&
        await_confirms(connection, connection.next_publish_seq - 1, "the published messages"))
        throw AmqpError(AmqpError::Kind::publish, "a published message was unroutable");
}

std::uint64_t AmqpSession::collect_confirms() {
    AmqpConnection& connection = *connection_;
    if (connection.next_publish_seq > 1 &&
        await_confirms(connection, connection.next_publish_seq - 1, "the published messages",
                       /*block=*/false))
        throw AmqpError(AmqpError::Kind::publish, "a published message was unroutable");
    return connection.next_publish_seq - 1 - connection.confirmed_up_to;
}

}  // namespace rmq2pg
