// Fair admission to a fixed number of slots, with a deadline on every wait: the pure half of the
// PostgreSQL pool (pg_pool.h), unit-tested without a database. Each caller belongs to a group (a
// pipeline); a slot freed goes to the waiter whose group holds the fewest slots, the longest
// waiter among equals, and a group that already holds a slot may not take the last `reserve`
// free ones: they stay for groups holding none. So a quiet pipeline's batch finds a connection
// at once beside a busy pipeline's backlog instead of queueing behind its transactions.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace rmq2pg {

// Thread-safe: every member takes `lock_`, held only for bookkeeping, never while a caller waits
// for anything but its turn.
class FairPermits {
  public:
    using Clock = std::chrono::steady_clock;

    // One waiter's place, owned by the caller so that another thread may abort its wait (the
    // write guard of a worker whose deadline passed). `group`: the caller's pipeline.
    class Ticket {
      public:
        explicit Ticket(std::string group = "") : group_(std::move(group)) {}
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        const std::string& group() const { return group_; }

      private:
        friend class FairPermits;
        const std::string group_;
        std::condition_variable wake;
        std::uint64_t arrival = 0;  // order among waiters of equal holdings
        bool granted = false;
        bool aborted = false;  // for good: every later wait of the ticket ends at once
    };

    enum class Outcome { granted, timed_out, aborted };

    // `reserve`: free slots a group holding one may not take (capped at slots - 1, so that a
    // lone busy group can still use all but the reserve).
    explicit FairPermits(std::size_t slots, std::size_t reserve = 0);

    // Waits for a slot until `deadline`. granted: the caller holds a slot and must release()
    // it with the same ticket's group.
    Outcome acquire(Clock::time_point deadline, Ticket& ticket);
    // Ends a wait of `ticket` under way, and every later one, with Outcome::aborted.
    void abort(Ticket& ticket);
    // Gives back a slot held by `group`: to the waiter it is owed to, if any.
    void release(const std::string& group);

    std::size_t slots() const { return slots_; }
    std::size_t reserve() const { return reserve_; }
    std::size_t in_use() const;
    std::size_t waiting() const;
    // Slots held by `group` now (tests and diagnostics).
    std::size_t held(const std::string& group) const;

  private:
    // Hands free slots to the waiters they are owed to; called with lock_ held after every
    // change of free_ or of the waiters.
    void dispatch();
    bool may_take(const std::string& group) const;
    void give_back(const std::string& group);

    mutable std::mutex lock_;
    const std::size_t slots_;
    const std::size_t reserve_;
    std::size_t free_;
    std::uint64_t arrivals_ = 0;
    std::vector<Ticket*> waiters_;             // in arrival order
    std::map<std::string, std::size_t> held_;  // groups holding at least one slot
};

}  // namespace rmq2pg
