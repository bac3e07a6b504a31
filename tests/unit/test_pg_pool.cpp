// The pool's admission (fifo_permits.h): first come, first served, deadlines on every wait, an
// abort that a write guard can send from its own thread. Threads, no database.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "fifo_permits.h"

using namespace rmq2pg;
using namespace std::chrono_literals;

namespace {

// Waits (bounded) until `n` callers are queued: the tests order their waiters by it.
void until_waiting(const FifoPermits& permits, std::size_t n) {
    auto give_up = std::chrono::steady_clock::now() + 5s;
    while (permits.waiting() < n && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(1ms);
    REQUIRE(permits.waiting() == n);
}

}  // namespace

TEST_CASE("free slots are granted at once, up to the pool's size") {
    FifoPermits permits(2);
    FifoPermits::Ticket a, b, c;
    auto soon = FifoPermits::Clock::now() + 20ms;
    CHECK(permits.acquire(soon, a) == FifoPermits::Outcome::granted);
    CHECK(permits.acquire(soon, b) == FifoPermits::Outcome::granted);
    CHECK(permits.in_use() == 2);
    CHECK(permits.acquire(FifoPermits::Clock::now() + 20ms, c) == FifoPermits::Outcome::timed_out);
    CHECK(permits.waiting() == 0);  // a timed-out waiter leaves the queue
    permits.release();
    CHECK(permits.in_use() == 1);
    CHECK(permits.acquire(FifoPermits::Clock::now() + 20ms, c) == FifoPermits::Outcome::granted);
}

TEST_CASE("a released slot goes to the longest waiter, not to whoever asks next") {
    FifoPermits permits(1);
    FifoPermits::Ticket holder;
    REQUIRE(permits.acquire(FifoPermits::Clock::now(), holder) == FifoPermits::Outcome::granted);
    std::mutex order_lock;
    std::vector<int> order;
    std::vector<std::thread> waiters;
    std::vector<std::unique_ptr<FifoPermits::Ticket>> tickets;
    for (int i = 0; i < 4; ++i) {
        tickets.push_back(std::make_unique<FifoPermits::Ticket>());
        waiters.emplace_back([&, i, t = tickets.back().get()] {
            if (permits.acquire(FifoPermits::Clock::now() + 10s, *t) !=
                FifoPermits::Outcome::granted)
                return;
            {
                std::lock_guard<std::mutex> guard(order_lock);
                order.push_back(i);
            }
            permits.release();
        });
        until_waiting(permits, static_cast<std::size_t>(i) + 1);
    }
    // A busy caller that releases and asks again at once queues behind the four.
    permits.release();
    FifoPermits::Ticket busy_again;
    CHECK(permits.acquire(FifoPermits::Clock::now() + 10s, busy_again) ==
          FifoPermits::Outcome::granted);
    {
        std::lock_guard<std::mutex> guard(order_lock);
        CHECK(order == std::vector<int>{0, 1, 2, 3});
    }
    permits.release();
    for (auto& t : waiters)
        t.join();
    CHECK(permits.in_use() == 0);
}

TEST_CASE("an aborted wait ends at once, and so does every later wait of its ticket") {
    FifoPermits permits(1);
    FifoPermits::Ticket holder, victim;
    REQUIRE(permits.acquire(FifoPermits::Clock::now(), holder) == FifoPermits::Outcome::granted);
    std::atomic<int> outcome{-1};
    auto started = std::chrono::steady_clock::now();
    std::thread waiter([&] {
        outcome = static_cast<int>(permits.acquire(FifoPermits::Clock::now() + 30s, victim));
    });
    until_waiting(permits, 1);
    permits.abort(victim);
    waiter.join();
    CHECK(outcome.load() == static_cast<int>(FifoPermits::Outcome::aborted));
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    CHECK(permits.waiting() == 0);
    permits.release();
    CHECK(permits.acquire(FifoPermits::Clock::now() + 1s, victim) == FifoPermits::Outcome::aborted);
    CHECK(permits.in_use() == 0);  // the aborted ticket holds no slot
}

TEST_CASE("a slot handed to a waiter aborted at the same moment goes on to the next waiter") {
    FifoPermits permits(1);
    FifoPermits::Ticket holder, first, second;
    REQUIRE(permits.acquire(FifoPermits::Clock::now(), holder) == FifoPermits::Outcome::granted);
    std::atomic<int> first_outcome{-1}, second_outcome{-1};
    std::thread a([&] {
        first_outcome = static_cast<int>(permits.acquire(FifoPermits::Clock::now() + 10s, first));
    });
    until_waiting(permits, 1);
    std::thread b([&] {
        second_outcome = static_cast<int>(permits.acquire(FifoPermits::Clock::now() + 2s, second));
    });
    until_waiting(permits, 2);
    // Both land before `first` wakes (it needs the lock both calls take).
    permits.release();
    permits.abort(first);
    a.join();
    b.join();
    if (first_outcome.load() == static_cast<int>(FifoPermits::Outcome::granted)) {
        // It woke granted before the abort could land: it holds the slot, `second` timed out.
        CHECK(second_outcome.load() == static_cast<int>(FifoPermits::Outcome::timed_out));
    } else {
        CHECK(first_outcome.load() == static_cast<int>(FifoPermits::Outcome::aborted));
        CHECK(second_outcome.load() == static_cast<int>(FifoPermits::Outcome::granted));
        permits.release();
    }
}
