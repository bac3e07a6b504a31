// AmqpSession::next_delivery(): a delivery read frame by frame (basic.deliver, content header,
// body frames) and copied into one block the Delivery owns, which the worker drops after the
// ack. Other frames met on the way (a cancel, a close, a late confirm) are handled here too.
#include <memory>

#include "amqp_fields.h"
#include "amqp_internal.h"

namespace rmq2pg {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
    if (ms.count() < 0)
        ms = std::chrono::milliseconds(0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

// A delivery's bytes copied out of rabbitmq-c's connection buffers (recycled before the next
// read) into one block the Delivery owns, and its headers, if any, into one more (copy_table()).
// rabbitmq-c's own envelope costs five allocations and a zeroed 4 KiB pool page per message: a
// fifth of the daemon's instructions in the profile.
struct OwnedDelivery {
    std::string bytes;  // exchange, routing key, property strings, body
    amqp_basic_properties_t properties{};
    std::unique_ptr<std::max_align_t[]> headers;  // copy_table()'s block, for messages with headers
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

// A frame other than a delivery arrived while consuming: the broker telling us something.
void handle_frame(AmqpConnection& connection, const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return;
    switch (frame.payload.method.id) {
        case AMQP_BASIC_RETURN_METHOD: {
            // A publish of this session came back: its content follows and must be read off.
            amqp_message_t message;
            amqp_rpc_reply_t r = amqp_read_message(connection.state, frame.channel, &message, 0);
            if (r.reply_type == AMQP_RESPONSE_NORMAL)
                amqp_destroy_message(&message);
            return;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            server_closed(connection, frame.payload.method, frame.channel, "consuming from",
                          CloseArrived::unprompted);
        case AMQP_BASIC_CANCEL_METHOD:
            throw AmqpChannelError(AmqpError::Kind::channel,
                                   "broker cancelled the consumer on " + connection.description +
                                       " (queue deleted or node down)",
                                   frame.channel, true);
        case AMQP_BASIC_DELIVER_METHOD:
            // Only met while the content of a delivery on another channel is read: RabbitMQ
            // writes a delivery's frames together, so this is a broken stream; reading on
            // would lose this delivery, reconnecting loses nothing (the broker requeues).
            connection.logged_in = false;
            throw AmqpError(AmqpError::Kind::connection,
                            "consuming from " + connection.description +
                                ": deliveries of two channels interleaved");
        default:  // basic.ack/nack of an earlier publish, connection.blocked...
            return;
    }
}

// The next frame of the delivery in progress on `channel`; frames for other channels are
// handled as they come (the content frames of one channel are contiguous, others may interleave).
void read_content_frame(AmqpConnection& connection, amqp_channel_t channel, amqp_frame_t& frame,
                        const char* what) {
    while (true) {
        timeval tv{kRpcTimeoutS, 0};
        int status = amqp_simple_wait_frame_noblock(connection.state, &frame, &tv);
        if (status != AMQP_STATUS_OK)  // the text only then: this runs for every frame
            throw status_error(connection, status,
                               std::string("reading a delivery's ") + what + " from");
        if (frame.channel == channel)
            return;
        handle_frame(connection, frame);
    }
}

// Recycles the frames read before this call (the last delivery is copied out, other frames
// are handled). rabbitmq-c's releases walk its list of queued frames (frames of other channels
// read while an RPC waited for its reply) once per channel released, and amqp_maybe_release_
// buffers() releases every channel: on a shared connection of 200 channels that subscribed
// while deliveries flowed, 100 000s of queued frames times 200 channels per delivery kept the
// hub's thread at 100% CPU delivering nothing. So: nothing while frames are queued (they are
// read first, and their pools cannot be recycled anyway), the last frame's channel otherwise,
// and every channel (RPC replies, other frames) once every kFullReleaseEvery reads.
void release_read_frames(AmqpConnection& connection) {
    constexpr unsigned kFullReleaseEvery = 256;
    if (amqp_frames_enqueued(connection.state))
        return;
    if (++connection.reads_since_full_release < kFullReleaseEvery) {
        amqp_maybe_release_buffers_on_channel(connection.state, connection.last_read_channel);
        return;
    }
    connection.reads_since_full_release = 0;
    amqp_maybe_release_buffers(connection.state);
}

[[noreturn]] void cut_short(AmqpConnection& connection, const char* what) {
    connection.logged_in = false;
    throw AmqpError(AmqpError::Kind::connection,
                    "consuming from " + connection.description + ": " + what);
}

}  // namespace

const amqp_basic_properties_t* delivery_properties(const Delivery& delivery) {
    if (!delivery.owner)
        return nullptr;
    return &static_cast<const OwnedDelivery*>(delivery.owner.get())->properties;
}

std::optional<Delivery> AmqpSession::next_delivery(std::chrono::milliseconds timeout) {
    AmqpConnection& connection = *connection_;
    release_read_frames(connection);
    timeval tv = to_timeval(timeout);
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(connection.state, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT)
        return std::nullopt;
    check(connection, status, "consuming from");
    connection.last_read_channel = frame.channel;
    if (frame.frame_type != AMQP_FRAME_METHOD ||
        frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
        handle_frame(connection, frame);
        return std::nullopt;
    }
    const amqp_channel_t channel = frame.channel;
    const auto* deliver = static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
    auto owned = std::make_unique<OwnedDelivery>();
    Delivery d;
    d.delivery_tag = deliver->delivery_tag;
    d.redelivered = deliver->redelivered != 0;
    d.channel = channel;
    // The method stays in the channel's pool while the header is read (only the body's frames
    // release it), so the block is sized once, with the header's body size, before any copy.
    read_content_frame(connection, channel, frame, "content header");
    if (frame.frame_type != AMQP_FRAME_HEADER)
        cut_short(connection, "a delivery without its header");
    const std::size_t body_size = frame.payload.properties.body_size;
    amqp_basic_properties_t& properties = owned->properties;
    properties = *static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
    std::size_t property_bytes = 0;
    for (const auto& [flag, field] : kBytesProperties)
        if (properties._flags & flag)
            property_bytes += (properties.*field).len;
    // Offsets, not views, until every byte is in: a body longer than its header said would
    // move the block.
    std::string& bytes = owned->bytes;
    bytes.reserve(deliver->exchange.len + deliver->routing_key.len + deliver->consumer_tag.len +
                  property_bytes + body_size);
    bytes.append(as_view(deliver->exchange));
    const std::size_t routing_key_at = bytes.size();
    bytes.append(as_view(deliver->routing_key));
    const std::size_t consumer_tag_at = bytes.size();
    bytes.append(as_view(deliver->consumer_tag));
    const std::size_t properties_at = bytes.size();
    for (const auto& [flag, field] : kBytesProperties)
        if (properties._flags & flag)
            bytes.append(as_view(properties.*field));
    if (properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        properties.headers = copy_table(properties.headers, owned->headers);
    }
    const std::size_t body_at = bytes.size();
    while (bytes.size() - body_at < body_size) {
        read_content_frame(connection, channel, frame, "content body");
        if (frame.frame_type != AMQP_FRAME_BODY)
            cut_short(connection, "a delivery's body was cut short");
        bytes.append(as_view(frame.payload.body_fragment));
        // rabbitmq-c takes each frame from the channel's pool and keeps the pool's pages when it
        // is recycled: without a release per copied frame, one 64 MiB body would leave 64 MiB
        // of pages to this connection for good.
        if (!amqp_frames_enqueued(connection.state))
            amqp_maybe_release_buffers_on_channel(connection.state, channel);
    }

    // Every byte is in place: point the views and the properties at them.
    const char* base = bytes.data();
    d.exchange = std::string_view(base, routing_key_at);
    d.routing_key = std::string_view(base + routing_key_at, consumer_tag_at - routing_key_at);
    d.consumer_tag = std::string_view(base + consumer_tag_at, properties_at - consumer_tag_at);
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
    if (properties._flags & AMQP_BASIC_CONTENT_ENCODING_FLAG)
        d.content_encoding = as_view(properties.content_encoding);
    if (properties._flags & AMQP_BASIC_TIMESTAMP_FLAG)
        d.timestamp = static_cast<std::int64_t>(properties.timestamp);
    if ((properties._flags & AMQP_BASIC_HEADERS_FLAG) && properties.headers.num_entries > 0) {
        d.headers = &properties.headers;
        d.find_header = find_header_in_table;
    }
    d.owner = std::unique_ptr<void, void (*)(void*)>(owned.release(), destroy_owned_delivery);
    return d;
}

}  // namespace rmq2pg
