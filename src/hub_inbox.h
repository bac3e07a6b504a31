// A worker's inbox on a shared AMQP connection (amqp_hub.h): the hub thread puts the deliveries
// of the worker's channel in it, the worker takes them out with a deadline. When the channel or
// the connection is lost the inbox fails: what it still holds is dropped (the broker requeues
// it) and every later take throws the hub's error, as a lost connection of the worker's own did.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

#include "amqp_session.h"
#include "delivery.h"

namespace rmq2pg {

// Bounded by the protocol, not by a limit of its own: the broker sends a consumer at most its
// prefetch of unacked deliveries, so the inbox holds at most `prefetch` of them, and put() never
// blocks the hub thread (which serves every other channel of the connection).
// Thread ownership: put() and fail() from the hub thread, take()/check() from the worker;
// everything behind `lock_`.
class Inbox {
  public:
    // Hub thread. After fail(), put() drops the delivery.
    void put(Delivery delivery);
    // Hub thread: the channel is gone. Drops what is held; take() and check() throw `error`.
    // The first failure is kept.
    void fail(const AmqpError& error);

    // Worker thread: the next delivery, or nullopt when `timeout` passed first. Throws the
    // AmqpError given to fail().
    std::optional<Delivery> take(std::chrono::milliseconds timeout);
    // Worker thread: throws the AmqpError given to fail(), if any.
    void check() const;

    // Readings (any thread).
    std::size_t size() const;
    bool failed() const;

  private:
    mutable std::mutex lock_;
    std::condition_variable arrived_;
    std::deque<Delivery> deliveries_;
    std::optional<AmqpError> failure_;
};

}  // namespace rmq2pg
