// FIFO admission with deadlines; see fifo_permits.h.
#include "fifo_permits.h"

#include <algorithm>

namespace rmq2pg {

FifoPermits::Outcome FifoPermits::acquire(Clock::time_point deadline, Ticket& ticket) {
    std::unique_lock<std::mutex> guard(lock_);
    ticket.granted = false;
    if (ticket.aborted)
        return Outcome::aborted;
    // A free slot is taken at once only when nobody waits: otherwise it is promised to them.
    if (free_ > 0 && waiters_.empty()) {
        --free_;
        return Outcome::granted;
    }
    waiters_.push_back(&ticket);
    ticket.wake.wait_until(guard, deadline, [&] { return ticket.granted || ticket.aborted; });
    if (ticket.granted) {
        // release() took it off waiters_ when it handed the slot over. Aborted meanwhile: the
        // slot goes on to the next waiter rather than being lost.
        if (!ticket.aborted)
            return Outcome::granted;
        guard.unlock();
        release();
        return Outcome::aborted;
    }
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &ticket));
    return ticket.aborted ? Outcome::aborted : Outcome::timed_out;
}

void FifoPermits::abort(Ticket& ticket) {
    std::lock_guard<std::mutex> guard(lock_);
    ticket.aborted = true;
    ticket.wake.notify_all();
}

void FifoPermits::release() {
    std::lock_guard<std::mutex> guard(lock_);
    if (waiters_.empty()) {
        ++free_;
        return;
    }
    Ticket* next = waiters_.front();
    waiters_.pop_front();
    next->granted = true;
    next->wake.notify_all();
}

std::size_t FifoPermits::in_use() const {
    std::lock_guard<std::mutex> guard(lock_);
    return slots_ - free_;
}

std::size_t FifoPermits::waiting() const {
    std::lock_guard<std::mutex> guard(lock_);
    return waiters_.size();
}

}  // namespace rmq2pg
