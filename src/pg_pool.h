// The daemon's bounded pool of PostgreSQL connections (postgres.pool_size): workers of every
// pipeline borrow one connection for one call (a batch's transaction, a catalog reading, a lease
// round) and give it back after its COMMIT or rollback. Waiters are served fairly across
// pipelines (fair_permits.h): a busy pipeline cannot starve a quiet one, nor keep it waiting
// behind its own transactions while the pool's reserve is free.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "fair_permits.h"
#include "pg_writer.h"

namespace rmq2pg {

// Thread-safe: workers acquire and return on their own threads; the idle connections are
// guarded by `lock_`, held only to push or pop one (never while connecting or waiting).
// A connection is owned by the one worker that borrowed it until its Lease ends.
class PgPool {
  public:
    // Opens nothing yet: connections are opened on demand, at most `size`, and kept idle after
    // use. `settings.application_name` is the prefix of each connection's name ("/1", "/2"...).
    // `reserve`: connections a pipeline already holding one may not take (postgres.pool_reserve).
    PgPool(PgConnectionSettings settings, std::size_t size, std::size_t reserve = 0);
    ~PgPool();
    PgPool(const PgPool&) = delete;
    PgPool& operator=(const PgPool&) = delete;

    // One borrowed connection. Ending the lease returns it, unless discard() was called: a
    // connection that failed or was interrupted is closed and its slot freed for a fresh one,
    // never handed to another worker dirty.
    class Lease {
      public:
        Lease(PgPool& pool, PgLinkPtr link, const std::string& group)
            : pool_(&pool), link_(std::move(link)), group_(group) {}
        Lease(Lease&& other) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        ~Lease();
        PgLink& link() { return *link_; }
        void discard() { discard_ = true; }

      private:
        PgPool* pool_;
        PgLinkPtr link_;
        std::string group_;  // the borrower's pipeline, whose holding the return lowers
        bool discard_ = false;
    };

    // Waits for a connection until `deadline`, in the turn fair_permits.h gives `ticket`'s
    // pipeline, and opens one when none
    // is idle. Throws WriteError: transient when the deadline passed (the pool is busy; retry),
    // connection when the wait was aborted (ticket; the text starts with `aborted_reason`) or
    // the connection could not be opened.
    Lease acquire(FairPermits::Clock::time_point deadline, FairPermits::Ticket& ticket,
                  const std::string& who);
    // Ends `ticket`'s wait (another thread: the write guard at its deadline).
    void abort(FairPermits::Ticket& ticket) { permits_.abort(ticket); }

    // Readings for /metrics and /readyz (any thread).
    std::size_t size() const { return permits_.slots(); }
    std::size_t reserve() const { return permits_.reserve(); }
    std::size_t in_use() const { return permits_.in_use(); }
    std::size_t waiting() const { return permits_.waiting(); }
    std::size_t open() const { return open_.load(); }
    std::uint64_t opened_total() const { return opened_.load(); }

  private:
    void give_back(PgLinkPtr link, bool discard, const std::string& group);

    PgConnectionSettings settings_;
    FairPermits permits_;
    std::mutex lock_;              // guards idle_
    std::vector<PgLinkPtr> idle_;  // most recently used last: reused first
    std::atomic<std::size_t> open_{0};
    std::atomic<std::uint64_t> opened_{0};
};

}  // namespace rmq2pg
