// Where a worker's deliveries come from and where it settles them. QueueSource (a classic or
// quorum queue over AMQP) implements it today; a stream with stored offsets is a second
// implementation, not a second worker. Owned by one worker thread; only keep_alive() and
// read_ahead() are called from the worker's write guard, while the worker is blocked in a guarded
// call and does not touch the source (the guard's watch ends before the worker uses it again).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "delivery.h"

namespace rmq2pg {

class Source {
  public:
    virtual ~Source() = default;  // closing returns everything unsettled to the broker

    // The next delivery, or nullopt when `timeout` passed first. Throws AmqpError.
    virtual std::optional<Delivery> next(std::chrono::milliseconds timeout) = 0;
    // Every delivery up to and including `tag` is committed or set aside: the broker forgets it.
    virtual void settle_up_to(std::uint64_t tag) = 0;
    // One delivery is committed (the others of its batch stay unsettled: on_error stop).
    virtual void settle_one(std::uint64_t tag) = 0;
    // One delivery is refused for good, without requeue (the broker's own dead-lettering).
    virtual void reject(std::uint64_t tag) = 0;

    // Keeps the connection alive without reading (a heartbeat). Throws AmqpError.
    virtual void keep_alive() = 0;
    // How often keep_alive() must run while nothing else is sent; zero = never.
    virtual std::chrono::milliseconds keep_alive_interval() const = 0;

    // Whether the guard runs read_ahead() instead of keep_alive() during a guarded call.
    virtual bool reads_ahead() const { return false; }
    // Reads deliveries for at most `budget` into the source's own bounded buffer, which next()
    // returns first, and keeps the connection alive meanwhile. Never throws: a broker failure is
    // kept and thrown by the next call to next().
    virtual void read_ahead(std::chrono::milliseconds /*budget*/) {}
};

}  // namespace rmq2pg
