// The guard thread of a worker; see write_guard.h.
#include "write_guard.h"

#include <algorithm>

namespace rmq2pg {

WriteGuard::WriteGuard() : thread_([this] { run(); }) {}

WriteGuard::~WriteGuard() {
    {
        std::lock_guard<std::mutex> lock(lock_);
        quit_ = true;
    }
    changed_.notify_one();
    thread_.join();
}

WriteGuard::Watch WriteGuard::watch(Clock::time_point deadline, std::function<void()> expire,
                                    std::chrono::milliseconds period,
                                    std::function<void()> keep_alive) {
    {
        std::lock_guard<std::mutex> lock(lock_);
        watching_ = true;
        expired_ = false;
        deadline_ = deadline;
        period_ = period;
        next_keep_alive_ = Clock::now() + period;
        expire_ = std::move(expire);
        keep_alive_ = std::move(keep_alive);
    }
    changed_.notify_one();
    return Watch(this);
}

void WriteGuard::end_watch() {
    // The guard runs its callbacks holding lock_, so taking it here waits for one under way.
    std::lock_guard<std::mutex> lock(lock_);
    watching_ = false;
    expire_ = nullptr;
    keep_alive_ = nullptr;
}

WriteGuard::Watch::~Watch() {
    if (guard_ != nullptr)
        guard_->end_watch();
}

bool WriteGuard::Watch::expired() const {
    std::lock_guard<std::mutex> lock(guard_->lock_);
    return guard_->expired_;
}

void WriteGuard::run() {
    std::unique_lock<std::mutex> lock(lock_);
    while (!quit_) {
        if (!watching_) {
            changed_.wait(lock);
            continue;
        }
        auto now = Clock::now();
        if (!expired_ && now >= deadline_) {
            expired_ = true;
            expire_();
            continue;
        }
        if (period_.count() > 0 && now >= next_keep_alive_) {
            keep_alive_();
            // Counted from the callback's end: a callback about as long as its period (a
            // stream's read-ahead) still leaves the lock to end_watch() between two runs.
            next_keep_alive_ = Clock::now() + period_;
            continue;
        }
        auto wake = expired_ ? Clock::time_point::max() : deadline_;
        if (period_.count() > 0)
            wake = std::min(wake, next_keep_alive_);
        if (wake == Clock::time_point::max())
            changed_.wait(lock);
        else
            changed_.wait_until(lock, wake);
    }
}

}  // namespace rmq2pg
