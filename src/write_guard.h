// The deadline and the keep-alive of a worker's blocking calls into PostgreSQL: while the worker
// thread is blocked in a connect or a write, its guard thread keeps the broker connection alive
// and cuts the call short at its deadline.
//
// Design: libpq blocks in poll(-1) on a server that stopped answering (a frozen VM, a network
// black hole: the kernel may even keep ACKing), and a worker blocked there sends no AMQP
// heartbeats, so the broker would drop a healthy consumer and redeliver batches whose COMMIT
// succeeded. A watch lends the worker's connections to the guard for the call's duration: the
// guard runs `keep_alive` (send a heartbeat) every `period` and `expire` (interrupt the writer)
// once at the deadline. Ending the watch waits for a callback under way, so after it the
// worker's thread owns its connections alone again.
// Ownership: one WriteGuard per worker; watch() and ~Watch run on the worker's thread, the
// callbacks on the guard's own thread; `lock_` orders the two.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace rmq2pg {

class WriteGuard {
  public:
    using Clock = std::chrono::steady_clock;

    WriteGuard();
    ~WriteGuard();
    WriteGuard(const WriteGuard&) = delete;
    WriteGuard& operator=(const WriteGuard&) = delete;

    // Ends its watch when destroyed (waiting for a callback under way).
    class Watch {
      public:
        explicit Watch(WriteGuard* guard) : guard_(guard) {}
        Watch(Watch&& other) noexcept : guard_(other.guard_) { other.guard_ = nullptr; }
        Watch& operator=(Watch&&) = delete;
        ~Watch();
        // True when the deadline passed and `expire` ran.
        bool expired() const;

      private:
        WriteGuard* guard_;
    };

    // Until the returned Watch is destroyed: `keep_alive` every `period` (never, if zero) and
    // `expire` once at `deadline`, both on the guard's thread. Callbacks must not throw.
    Watch watch(Clock::time_point deadline, std::function<void()> expire,
                std::chrono::milliseconds period, std::function<void()> keep_alive);

  private:
    void run();
    void end_watch();

    std::mutex lock_;
    std::condition_variable changed_;
    bool watching_ = false;
    bool expired_ = false;
    bool quit_ = false;
    Clock::time_point deadline_;
    Clock::time_point next_keep_alive_;
    std::chrono::milliseconds period_{0};
    std::function<void()> expire_;
    std::function<void()> keep_alive_;
    std::thread thread_;  // last: started once every member above exists
};

}  // namespace rmq2pg
