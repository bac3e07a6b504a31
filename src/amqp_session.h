// One AMQP connection with one channel for declaring, consuming and publishing with confirms,
// owned by exactly one thread: rabbitmq-c connections are not thread-safe. rabbitmq-c stays in
// the amqp_*.cpp files; every failure comes out as an AmqpError whose kind says what to do next.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp_url.h"
#include "config.h"
#include "delivery.h"

namespace rmq2pg {

struct AmqpConnection;  // rabbitmq-c's state (amqp_internal.h), kept out of this header

class AmqpError : public std::runtime_error {
  public:
    // What the caller must do next.
    enum class Kind {
        connection,  // socket, heartbeat, connection.close: reconnect (maybe to the next URL)
        channel,     // channel.close or consumer cancelled by the broker: reconnect
        refused,     // login/vhost/permission refused: reconnecting will not help until fixed
        publish,     // a dead-letter publish was nacked or unroutable: retry later
        conflict,    // a declaration differs from what exists (406): fix the config or the queue
        // This message cannot be published as it is (rabbitmq-c refused to encode it, e.g. its
        // headers exceed the frame): nothing was sent and the session stays usable; retrying
        // the same message fails the same way, so publish it differently or set it aside.
        unpublishable,
    };
    AmqpError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

// A channel.close or a consumer cancelled on one channel of a shared connection (amqp_hub.h):
// only the consumer of that channel is affected; the connection stays usable.
class AmqpChannelError : public AmqpError {
  public:
    AmqpChannelError(Kind kind, const std::string& what, std::uint16_t channel, bool still_open)
        : AmqpError(kind, what), channel_(channel), still_open_(still_open) {}
    std::uint16_t channel() const { return channel_; }
    // The broker cancelled the consumer but left the channel open: close it before reuse.
    bool still_open() const { return still_open_; }

  private:
    std::uint16_t channel_;
    bool still_open_;
};

struct QueueState {
    std::uint32_t messages = 0;
    std::uint32_t consumers = 0;
};

// Every header of a delivery (as received: a dead letter's reason, the producer's own headers),
// in the table's order, each value as text (tables and arrays as JSON).
std::vector<std::pair<std::string, std::string>> delivery_headers(const Delivery& delivery);

class AmqpSession {
  public:
    // Opens the socket (TCP, or TLS for amqps://), logs in and opens the channel.
    AmqpSession(const AmqpUrl& url, int heartbeat_s, const std::string& connection_name);
    ~AmqpSession();
    AmqpSession(const AmqpSession&) = delete;
    AmqpSession& operator=(const AmqpSession&) = delete;

    // Declares a durable classic queue (idempotent), e.g. "<queue>.dead".
    void declare_durable_queue(const std::string& queue);
    // Leaves an existing queue as it is (whatever its type and arguments: a user may have made
    // "<queue>.dead" a quorum queue) and declares a durable classic one only when it is missing.
    void ensure_queue(const std::string& queue);
    // Topology from the config: idempotent; a conflict with what exists throws Kind::conflict
    // with the broker's text, which names the differing argument.
    void declare_exchange(const ExchangeConfig& exchange);
    void declare_queue(const std::string& queue, const QueueDeclaration& declaration);
    // queue.declare passive: throws AmqpError(channel) when the queue does not exist.
    QueueState inspect_queue(const std::string& queue);
    // The same, nullopt when the queue does not exist (the channel is reopened: the session
    // stays usable), e.g. a dead-letter queue declared at the first dead letter.
    std::optional<QueueState> inspect_queue_if_exists(const std::string& queue);
    // `priority`: the consumer's x-priority (RabbitMQ delivers to the highest-priority consumer
    // that has prefetch room; unset = the broker's default, 0).
    void start_consuming(const std::string& queue, std::uint16_t prefetch,
                         const std::string& consumer_tag, std::optional<int> priority = {});
    // Where a stream consumer starts (the x-stream-offset argument, typed as RabbitMQ wants it):
    // "first", "last" or "next" as a string, an offset as a long, a time as a timestamp.
    struct StreamOffset {
        enum class Kind { text, offset, timestamp };
        Kind kind = Kind::text;
        std::string text = "first";
        std::int64_t value = 0;  // offset, or epoch seconds
    };
    // Streams: one more consumer on this channel, `prefetch` its own (a stream needs one; its
    // acks are credit). Several streams may be consumed on one channel, told apart by tag.
    void consume_stream(const std::string& stream, std::uint16_t prefetch,
                        const std::string& consumer_tag, const StreamOffset& offset);

    // The next delivery, or nullopt when `timeout` passed first. Heartbeats are sent and checked
    // while waiting. Throws AmqpError when the connection or the consuming channel is gone.
    std::optional<Delivery> next_delivery(std::chrono::milliseconds timeout);

    void ack_up_to(std::uint64_t delivery_tag);  // basic.ack multiple=true
    void ack_one(std::uint64_t delivery_tag);
    void reject(std::uint64_t delivery_tag, bool requeue);  // basic.nack, one message
    // Ends the consumer and puts every delivery not acked back in its queue (basic.nack
    // multiple, requeue), and returns once the broker has handled that and every ack before it.
    // Closing the connection would requeue them too, but a quorum queue may then apply the close
    // before acks still on their way and requeue messages that were acked (seen on 3.10).
    void give_back_unacked(const std::string& consumer_tag);

    // Publishes `original` (body and properties) with extra headers, mandatory, and waits for the
    // broker's confirm. Throws AmqpError(publish) on nack or when no queue took the message,
    // AmqpError(unpublishable) when the message with these headers does not fit a frame.
    void publish_confirmed(const std::string& exchange, const std::string& routing_key,
                           const Delivery& original,
                           const std::vector<std::pair<std::string, std::string>>& extra_headers);

    // Windowed publishing with confirms (the companion publisher and the tests): publish() sends
    // without waiting (AmqpError(unpublishable) as above); wait_for_confirms() returns once the
    // broker confirmed all of them.
    struct OutgoingMessage {
        std::string_view body;
        std::string_view message_id;
        std::string_view content_type = "application/json";
        std::string_view content_encoding;  // "" = none
        std::optional<std::int64_t> timestamp;
        std::vector<std::pair<std::string, std::string>> headers;
    };
    void publish(const std::string& exchange, const std::string& routing_key,
                 const OutgoingMessage& message);
    // Publishes a copy of a received message (body, properties, its headers except those named
    // in `drop`, then `extra`) to `exchange`/`routing_key`, mandatory, without waiting:
    // wait_for_confirms() says when the broker has it (dead-letter replay, windowed).
    void publish_copy(const std::string& exchange, const std::string& routing_key,
                      const Delivery& original, const std::vector<std::string>& drop,
                      const std::vector<std::pair<std::string, std::string>>& extra);
    void wait_for_confirms();
    // Reads the confirms that have already arrived, without waiting (a paced publisher keeps its
    // schedule instead of stalling on a round trip); returns how many publishes are unconfirmed.
    std::uint64_t collect_confirms();

    // Sends one heartbeat frame. The worker's write guard calls it from its own thread while the
    // worker is blocked in a PostgreSQL write and does not touch this session (a lend, ended
    // under the guard's lock): the broker must never drop a healthy consumer because a
    // COMMIT is slow. Throws AmqpError(connection) when the socket is gone.
    void send_heartbeat();
    // The negotiated heartbeat interval (0 = heartbeats off).
    std::chrono::seconds heartbeat_interval() const;

    // A shared connection (amqp_hub.h, amqp_channels.cpp): one consumer per channel besides
    // the session's own channel 1, which keeps declaring. Errors that concern one channel
    // only are AmqpChannelError.
    std::uint16_t channel_max() const;  // negotiated; 0 = no limit but the protocol's
    void open_channel(std::uint16_t channel);
    // basic.qos (per consumer) and basic.consume of `queue` on `channel`, opened before.
    void consume_on(std::uint16_t channel, const std::string& queue, std::uint16_t prefetch,
                    const std::string& consumer_tag);
    void ack_on(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple);
    void reject_on(std::uint16_t channel, std::uint64_t delivery_tag);  // nack, no requeue
    // Cancels the consumer, gives every unacked delivery back (as give_back_unacked) and closes
    // the channel.
    void give_back_and_close(std::uint16_t channel, const std::string& consumer_tag);
    // channel.close of a channel whose consumer the broker cancelled.
    void close_channel(std::uint16_t channel);
    // Waits until frames can be read without blocking (true) or `wake_fd` is readable or
    // `timeout` passed (false). Buffered frames count as readable.
    bool wait_readable(std::chrono::milliseconds timeout, int wake_fd);

  private:
    std::unique_ptr<AmqpConnection> connection_;
};

}  // namespace rmq2pg
