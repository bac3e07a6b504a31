// A shared AMQP connection (amqp.connections): one thread owns one rabbitmq-c connection and
// consumes, for many workers, one queue per channel; each delivery goes to its worker's inbox,
// each settle comes back as a request. Workers see it through HubSource (hub_source.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amqp_session.h"
#include "backoff.h"
#include "config.h"
#include "dead_letter.h"
#include "hub_channels.h"
#include "hub_inbox.h"

namespace rmq2pg {

// Thread ownership: the hub's thread is the only one that touches the connection (rabbitmq-c is
// not thread-safe), its ChannelTable and its consumers. Workers call subscribe(), settle() and
// unsubscribe(), which post a command under `lock_` and wake the hub through an eventfd; they
// read their deliveries from their own Inbox. Readings (connected(), channels()…) are atomics.
// The hub sends and checks heartbeats itself whatever its workers do, so a worker blocked in a
// long COMMIT never costs its consumer (HubSource::keep_alive() is a no-op).
//
// Reconnect: a lost connection fails every inbox (the worker drops its unsettled batch and
// backlog exactly as when a connection of its own was lost: the broker requeues them) and
// bumps the connection's generation; the hub reconnects with backoff, trying the amqp.urls in
// turn. A settle carries the generation its deliveries were received on and is dropped when
// that connection or channel is gone (ChannelTable::channel_for: the generation filter).
class AmqpHub {
  public:
    // Connects in the background; `config` outlives the hub.
    AmqpHub(std::shared_ptr<const Config> config, int index);
    // stop(), then waits for the thread.
    ~AmqpHub();
    AmqpHub(const AmqpHub&) = delete;
    AmqpHub& operator=(const AmqpHub&) = delete;

    // What a worker consumes: the pipeline's queue, declared first when the config says so.
    struct ConsumerSpec {
        std::string queue;
        std::optional<QueueDeclaration> declare;
        std::uint16_t prefetch = 0;
        std::string consumer_tag;
    };
    struct Subscription {
        std::uint64_t id = 0;
        std::uint64_t generation = 0;  // of the connection its channel is on
        std::shared_ptr<Inbox> inbox;
    };
    enum class Settle { up_to, one, reject };

    // Worker threads. Declares the exchanges of the config and the queue, opens a channel and
    // starts consuming on it; waits at most `timeout`. Throws AmqpError (the broker's, or
    // Kind::connection when the hub is not connected or did not answer in time).
    Subscription subscribe(const ConsumerSpec& spec, std::chrono::milliseconds timeout);
    // Posts a basic.ack (up_to: multiple) or basic.nack (reject: no requeue); does not wait.
    void settle(const Subscription& subscription, Settle kind, std::uint64_t delivery_tag);
    // Cancels the consumer, gives back what is unacked and closes the channel, after every
    // settle posted before; waits at most `timeout` for it (past it the hub still does it, or
    // the connection closes: the broker requeues either way).
    void unsubscribe(const Subscription& subscription, std::chrono::milliseconds timeout);

    // Main thread: runs what was posted, closes the connection, and waits at most `timeout`
    // for it. Called once the workers have stopped.
    void stop(std::chrono::milliseconds timeout);

    // Readings (any thread).
    int index() const { return index_; }
    bool connected() const { return connected_.load(); }
    std::size_t channels() const { return channels_.load(); }
    std::uint64_t connects() const { return connects_.load(); }
    std::string connection_name() const { return connection_name_; }

    // The dead letters of the workers on this hub: one more connection, of its own (publishing
    // with confirms while consuming would put confirms into the hub's read loop), opened at the
    // first dead letter.
    const std::shared_ptr<SharedDeadLetters>& dead_letters() const { return dead_letters_; }

  private:
    // A worker waiting for its command to be done (subscribe, unsubscribe).
    struct Reply {
        std::mutex lock;
        std::condition_variable done_cv;
        bool done = false;
        bool abandoned = false;  // the worker stopped waiting
        std::optional<AmqpError> error;
        Subscription subscription;
    };
    struct Command {
        enum class Kind { subscribe, settle, unsubscribe } kind;
        std::shared_ptr<Reply> reply;  // subscribe, unsubscribe
        ConsumerSpec spec;             // subscribe
        std::uint64_t id = 0;          // settle, unsubscribe
        std::uint64_t generation = 0;  // settle, unsubscribe
        Settle settle = Settle::up_to;
        std::uint64_t delivery_tag = 0;
    };
    struct Consumer {
        std::shared_ptr<Inbox> inbox;
        std::string consumer_tag;
    };

    void post(Command command);
    static void wait_reply(Reply& reply, std::chrono::milliseconds timeout);

    // The hub's thread.
    void run();
    void connect();
    void run_command(Command& command);
    void open_consumer(Command& command);
    void close_consumer(Command& command);
    void read_deliveries();
    void channel_failed(const AmqpChannelError& error);
    void connection_lost(const AmqpError& error);
    // Commands met while disconnected: subscribes fail with the last error, the rest is moot.
    void answer_disconnected(std::deque<Command>& commands);
    void wait_for_wake(std::chrono::milliseconds timeout);

    const std::shared_ptr<const Config> config_;
    const int index_;
    const std::string connection_name_;
    int wake_fd_ = -1;  // eventfd: a command was posted
    const std::shared_ptr<SharedDeadLetters> dead_letters_;

    // Guards `commands_` and `stopping_` (posted by workers and the main thread).
    std::mutex lock_;
    std::deque<Command> commands_;
    bool stopping_ = false;
    std::condition_variable finished_cv_;
    bool finished_ = false;  // under lock_: the thread left its loop

    // The hub's thread only.
    std::unique_ptr<AmqpSession> session_;
    std::optional<ChannelTable> table_;
    std::map<std::uint64_t, Consumer> consumers_;
    std::uint64_t next_id_ = 1;
    std::uint64_t generation_ = 0;
    std::size_t url_index_ = 0;
    Backoff backoff_;
    std::chrono::steady_clock::time_point next_attempt_{};
    std::string last_error_ = "not connected yet";

    std::atomic<bool> connected_{false};
    std::atomic<std::size_t> channels_{0};
    std::atomic<std::uint64_t> connects_{0};

    std::thread thread_;  // last: starts once everything above is built
};

}  // namespace rmq2pg
