// What the amqp_*.cpp files share behind AmqpSession (private: only they include it): the
// rabbitmq-c connection, the one check() every status goes through, and the one handler of a
// broker's channel.close / connection.close.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amqp_session.h"

namespace rmq2pg {

// The one channel of a session: consuming, declaring and publishing share it (a dead-letter
// publisher is a session of its own).
constexpr amqp_channel_t kChannel = 1;
// Connect and RPC timeouts: long enough for a loaded broker, short enough that a dead one is
// noticed before the operator is.
constexpr int kConnectTimeoutS = 10;
constexpr int kRpcTimeoutS = 30;

inline amqp_bytes_t as_bytes(const std::string& s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
inline amqp_bytes_t as_bytes(std::string_view s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view as_view(const amqp_bytes_t& b) {
    return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

struct AmqpConnection {
    amqp_connection_state_t state = nullptr;
    std::string description;  // host:port vhost, no credentials: every error names it
    // False once the socket is known to be gone: the destructor then skips the polite close
    // (it would wait out the RPC timeout on a dead peer).
    bool logged_in = false;
    bool confirms = false;  // confirm.select done on kChannel
    // Publisher confirms (amqp_publish.cpp): the broker numbers publishes from 1.
    std::uint64_t next_publish_seq = 1;
    std::uint64_t confirmed_up_to = 0;           // every seq at or below was acked by the broker
    std::vector<std::uint64_t> confirmed_ahead;  // single acks above confirmed_up_to
    std::vector<char> encode_buffer;             // one frame: a publish is encoded here first
    // Releasing rabbitmq-c's frame pools between deliveries (amqp_delivery.cpp): the channel of
    // the last frame read, and the reads since every channel's pools were last released.
    amqp_channel_t last_read_channel = 0;
    unsigned reads_since_full_release = 0;

    AmqpConnection() = default;
    AmqpConnection(const AmqpConnection&) = delete;
    AmqpConnection& operator=(const AmqpConnection&) = delete;
    ~AmqpConnection();
};

// Where a library status came from: encoding a frame before anything was sent leaves the
// connection as it was (the message, not the connection, is at fault); anything else is I/O.
enum class StatusFrom { io, encoding };

// The AmqpError for a rabbitmq-c status (never AMQP_STATUS_OK): "<operation> on <connection>:
// <rabbitmq-c's text>", with OpenSSL's reason where rabbitmq-c only says "SSL error". An I/O
// status is Kind::connection and marks the connection gone; an encoding one is unpublishable.
AmqpError status_error(AmqpConnection& connection, int status, std::string_view operation,
                       StatusFrom from = StatusFrom::io);

// cppkafka's check(): throws status_error() unless `status` is AMQP_STATUS_OK.
inline void check(AmqpConnection& connection, int status, std::string_view operation,
                  StatusFrom from = StatusFrom::io) {
    if (status != AMQP_STATUS_OK)
        throw status_error(connection, status, operation, from);
}

// The same for an RPC's reply: a library exception goes through status_error(), a server
// exception (the broker closed the channel or the connection) through server_closed().
void check(AmqpConnection& connection, const amqp_rpc_reply_t& reply, std::string_view operation);

// Whether a channel.close arrived as the answer to our request (queue.declare, basic.consume...)
// or unprompted, while consuming or waiting for confirms. It decides what 406 means.
enum class CloseArrived { as_reply, unprompted };

// The broker closed `channel` (channel.close) or the connection (connection.close): answers
// close-ok (RabbitMQ waits for it before it frees the channel) and throws the AmqpError whose
// kind says what to do: 403 ACCESS_REFUSED / 530 NOT_ALLOWED are refused, a 406
// PRECONDITION_FAILED answering a request is conflict (a declaration differs from what exists),
// anything else is channel or connection. Every place a close can arrive calls this.
[[noreturn]] void server_closed(AmqpConnection& connection, const amqp_method_t& close,
                                amqp_channel_t channel, std::string_view operation,
                                CloseArrived arrived);

// The AMQP properties a delivery arrived with (amqp_delivery.cpp keeps them in the block the
// Delivery owns; a dead letter carries them on), or null for a Delivery made elsewhere.
const amqp_basic_properties_t* delivery_properties(const Delivery& delivery);

}  // namespace rmq2pg
