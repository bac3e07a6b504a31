// First come, first served admission to a fixed number of slots, with a deadline on every wait:
// the pure half of the PostgreSQL pool (pg_pool.h), unit-tested without a database. A slot freed
// goes to the longest waiter, so a busy pipeline that releases and asks again queues behind the
// quiet ones already waiting: no pipeline starves.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

namespace rmq2pg {

// Thread-safe: every member takes `lock_`, held only for bookkeeping, never while a caller waits
// for anything but its turn.
class FifoPermits {
  public:
    using Clock = std::chrono::steady_clock;

    // One waiter's place, owned by the caller so that another thread may abort its wait (the
    // write guard of a worker whose deadline passed).
    class Ticket {
      public:
        Ticket() = default;
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;

      private:
        friend class FifoPermits;
        std::condition_variable wake;
        bool granted = false;
        bool aborted = false;  // for good: every later wait of the ticket ends at once
    };

    enum class Outcome { granted, timed_out, aborted };

    explicit FifoPermits(std::size_t slots) : free_(slots), slots_(slots) {}

    // Waits for a slot until `deadline`, behind every earlier waiter. granted: the caller holds
    // a slot and must release() it.
    Outcome acquire(Clock::time_point deadline, Ticket& ticket);
    // Ends a wait of `ticket` under way, and every later one, with Outcome::aborted.
    void abort(Ticket& ticket);
    // Gives a slot back: to the longest waiter if there is one.
    void release();

    std::size_t slots() const { return slots_; }
    std::size_t in_use() const;
    std::size_t waiting() const;

  private:
    mutable std::mutex lock_;
    std::size_t free_;
    const std::size_t slots_;
    std::deque<Ticket*> waiters_;  // oldest first
};

}  // namespace rmq2pg
