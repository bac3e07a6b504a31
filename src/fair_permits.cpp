// Fair admission with deadlines; see fair_permits.h.
#include "fair_permits.h"

#include <algorithm>

namespace rmq2pg {

FairPermits::FairPermits(std::size_t slots, std::size_t reserve)
    : slots_(slots), reserve_(slots == 0 ? 0 : std::min(reserve, slots - 1)), free_(slots) {}

bool FairPermits::may_take(const std::string& group) const {
    if (free_ == 0)
        return false;
    return held_.count(group) == 0 || free_ > reserve_;
}

void FairPermits::dispatch() {
    while (free_ > 0) {
        // The eligible waiter whose group holds the fewest slots, the earliest among equals. A
        // scan: waiters are at most the pool's workers, and this runs once per borrow.
        Ticket* best = nullptr;
        std::size_t best_held = 0;
        for (Ticket* t : waiters_) {
            if (!may_take(t->group_))
                continue;
            auto it = held_.find(t->group_);
            std::size_t h = it == held_.end() ? 0 : it->second;
            if (best == nullptr || h < best_held ||
                (h == best_held && t->arrival < best->arrival)) {
                best = t;
                best_held = h;
            }
        }
        if (best == nullptr)
            return;
        waiters_.erase(std::find(waiters_.begin(), waiters_.end(), best));
        --free_;
        ++held_[best->group_];
        best->granted = true;
        best->wake.notify_all();
    }
}

FairPermits::Outcome FairPermits::acquire(Clock::time_point deadline, Ticket& ticket) {
    std::unique_lock<std::mutex> guard(lock_);
    ticket.granted = false;
    if (ticket.aborted)
        return Outcome::aborted;
    ticket.arrival = ++arrivals_;
    waiters_.push_back(&ticket);
    // Takes a free slot at once only when no earlier waiter is owed it.
    dispatch();
    ticket.wake.wait_until(guard, deadline, [&] { return ticket.granted || ticket.aborted; });
    if (ticket.granted) {
        // dispatch() took it off waiters_ when it handed the slot over. Aborted meanwhile: the
        // slot goes on to the next waiter rather than being lost.
        if (!ticket.aborted)
            return Outcome::granted;
        give_back(ticket.group_);
        return Outcome::aborted;
    }
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &ticket));
    return ticket.aborted ? Outcome::aborted : Outcome::timed_out;
}

void FairPermits::abort(Ticket& ticket) {
    std::lock_guard<std::mutex> guard(lock_);
    ticket.aborted = true;
    ticket.wake.notify_all();
}

void FairPermits::release(const std::string& group) {
    std::lock_guard<std::mutex> guard(lock_);
    give_back(group);
}

void FairPermits::give_back(const std::string& group) {
    auto it = held_.find(group);
    if (it != held_.end() && --it->second == 0)
        held_.erase(it);
    ++free_;
    dispatch();
}

std::size_t FairPermits::in_use() const {
    std::lock_guard<std::mutex> guard(lock_);
    return slots_ - free_;
}

std::size_t FairPermits::waiting() const {
    std::lock_guard<std::mutex> guard(lock_);
    return waiters_.size();
}

std::size_t FairPermits::held(const std::string& group) const {
    std::lock_guard<std::mutex> guard(lock_);
    auto it = held_.find(group);
    return it == held_.end() ? 0 : it->second;
}

}  // namespace rmq2pg
