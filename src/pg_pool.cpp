// The bounded PostgreSQL pool; see pg_pool.h. Design: FairPermits bounds how many connections
// exist (borrowed or idle) and orders the waiters; a permit granted comes with an idle
// connection when there is one, else the borrower opens one itself (on its own thread, bounded
// by postgres.connect_timeout_s), so no thread of the pool ever blocks on the server.
#include "pg_pool.h"

namespace rmq2pg {

PgPool::PgPool(PgConnectionSettings settings, std::size_t size, std::size_t reserve)
    : settings_(std::move(settings)), permits_(size, reserve) {}

PgPool::~PgPool() = default;

PgPool::Lease::~Lease() {
    if (pool_ != nullptr && link_)
        pool_->give_back(std::move(link_), discard_, group_);
}

PgPool::Lease PgPool::acquire(FairPermits::Clock::time_point deadline, FairPermits::Ticket& ticket,
                              const std::string& who) {
    auto waited_from = FairPermits::Clock::now();
    switch (permits_.acquire(deadline, ticket)) {
        case FairPermits::Outcome::granted:
            break;
        case FairPermits::Outcome::aborted:
            throw WriteError(WriteError::Kind::connection,
                             who + ": the wait for a pooled PostgreSQL connection was cut short");
        case FairPermits::Outcome::timed_out:
            throw WriteError(
                WriteError::Kind::transient,
                who + ": no pooled PostgreSQL connection came free within " +
                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       FairPermits::Clock::now() - waited_from)
                                       .count()) +
                    " ms (postgres.pool_size " + std::to_string(size()) + ", " +
                    std::to_string(waiting()) + " other callers waiting)");
    }
    {
        std::lock_guard<std::mutex> guard(lock_);
        if (!idle_.empty()) {
            PgLinkPtr link = std::move(idle_.back());
            idle_.pop_back();
            return Lease(*this, std::move(link), ticket.group());
        }
    }
    try {
        PgConnectionSettings settings = settings_;
        settings.application_name += "/" + std::to_string(opened_.fetch_add(1) + 1);
        PgLinkPtr link = open_link(settings);
        open_++;
        return Lease(*this, std::move(link), ticket.group());
    } catch (...) {
        permits_.release(ticket.group());
        throw;
    }
}

void PgPool::give_back(PgLinkPtr link, bool discard, const std::string& group) {
    if (discard) {
        link.reset();  // closes it
        open_--;
    } else {
        std::lock_guard<std::mutex> guard(lock_);
        idle_.push_back(std::move(link));
    }
    permits_.release(group);
}

}  // namespace rmq2pg
