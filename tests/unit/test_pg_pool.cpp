// The pool's admission (fair_permits.h): fair across pipelines, first come first served within one,
// deadlines on every wait, an abort that a write guard can send from its own thread. Threads, no
// database.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "fair_permits.h"

using namespace rmq2pg;
using namespace std::chrono_literals;

namespace {

// Waits (bounded) until `n` callers are queued: the tests order their waiters by it.
void until_waiting(const FairPermits& permits, std::size_t n) {
    auto give_up = std::chrono::steady_clock::now() + 5s;
    while (permits.waiting() < n && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(1ms);
    REQUIRE(permits.waiting() == n);
}

}  // namespace

TEST_CASE("free slots are granted at once, up to the pool's size") {
    FairPermits permits(2);
    FairPermits::Ticket a, b, c;
    auto soon = FairPermits::Clock::now() + 20ms;
    CHECK(permits.acquire(soon, a) == FairPermits::Outcome::granted);
    CHECK(permits.acquire(soon, b) == FairPermits::Outcome::granted);
    CHECK(permits.in_use() == 2);
    CHECK(permits.acquire(FairPermits::Clock::now() + 20ms, c) == FairPermits::Outcome::timed_out);
    CHECK(permits.waiting() == 0);  // a timed-out waiter leaves the queue
    permits.release("");
    CHECK(permits.in_use() == 1);
    CHECK(permits.acquire(FairPermits::Clock::now() + 20ms, c) == FairPermits::Outcome::granted);
}

TEST_CASE("a released slot goes to the longest waiter, not to whoever asks next") {
    FairPermits permits(1);
    FairPermits::Ticket holder;
    REQUIRE(permits.acquire(FairPermits::Clock::now(), holder) == FairPermits::Outcome::granted);
    std::mutex order_lock;
    std::vector<int> order;
    std::vector<std::thread> waiters;
    std::vector<std::unique_ptr<FairPermits::Ticket>> tickets;
    for (int i = 0; i < 4; ++i) {
        tickets.push_back(std::make_unique<FairPermits::Ticket>());
        waiters.emplace_back([&, i, t = tickets.back().get()] {
            if (permits.acquire(FairPermits::Clock::now() + 10s, *t) !=
                FairPermits::Outcome::granted)
                return;
            {
                std::lock_guard<std::mutex> guard(order_lock);
                order.push_back(i);
            }
            permits.release("");
        });
        until_waiting(permits, static_cast<std::size_t>(i) + 1);
    }
    // A busy caller that releases and asks again at once queues behind the four.
    permits.release("");
    FairPermits::Ticket busy_again;
    CHECK(permits.acquire(FairPermits::Clock::now() + 10s, busy_again) ==
          FairPermits::Outcome::granted);
    {
        std::lock_guard<std::mutex> guard(order_lock);
        CHECK(order == std::vector<int>{0, 1, 2, 3});
    }
    permits.release("");
    for (auto& t : waiters)
        t.join();
    CHECK(permits.in_use() == 0);
}

TEST_CASE("an aborted wait ends at once, and so does every later wait of its ticket") {
    FairPermits permits(1);
    FairPermits::Ticket holder, victim;
    REQUIRE(permits.acquire(FairPermits::Clock::now(), holder) == FairPermits::Outcome::granted);
    std::atomic<int> outcome{-1};
    auto started = std::chrono::steady_clock::now();
    std::thread waiter([&] {
        outcome = static_cast<int>(permits.acquire(FairPermits::Clock::now() + 30s, victim));
    });
    until_waiting(permits, 1);
    permits.abort(victim);
    waiter.join();
    CHECK(outcome.load() == static_cast<int>(FairPermits::Outcome::aborted));
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    CHECK(permits.waiting() == 0);
    permits.release("");
    CHECK(permits.acquire(FairPermits::Clock::now() + 1s, victim) == FairPermits::Outcome::aborted);
    CHECK(permits.in_use() == 0);  // the aborted ticket holds no slot
}

TEST_CASE("a slot handed to a waiter aborted at the same moment goes on to the next waiter") {
    FairPermits permits(1);
    FairPermits::Ticket holder, first, second;
    REQUIRE(permits.acquire(FairPermits::Clock::now(), holder) == FairPermits::Outcome::granted);
    std::atomic<int> first_outcome{-1}, second_outcome{-1};
    std::thread a([&] {
        first_outcome = static_cast<int>(permits.acquire(FairPermits::Clock::now() + 10s, first));
    });
    until_waiting(permits, 1);
    std::thread b([&] {
        second_outcome = static_cast<int>(permits.acquire(FairPermits::Clock::now() + 2s, second));
    });
    until_waiting(permits, 2);
    // Both land before `first` wakes (it needs the lock both calls take).
    permits.release("");
    permits.abort(first);
    a.join();
    b.join();
    if (first_outcome.load() == static_cast<int>(FairPermits::Outcome::granted)) {
        // It woke granted before the abort could land: it holds the slot, `second` timed out.
        CHECK(second_outcome.load() == static_cast<int>(FairPermits::Outcome::timed_out));
    } else {
        CHECK(first_outcome.load() == static_cast<int>(FairPermits::Outcome::aborted));
        CHECK(second_outcome.load() == static_cast<int>(FairPermits::Outcome::granted));
        permits.release("");
    }
}

TEST_CASE("a pipeline holding a connection leaves the reserve to pipelines holding none") {
    FairPermits permits(2, 1);
    FairPermits::Ticket busy_a("busy"), busy_b("busy"), quiet("quiet");
    CHECK(permits.acquire(FairPermits::Clock::now(), busy_a) == FairPermits::Outcome::granted);
    // One free slot left, the reserve: the busy pipeline's second worker may not take it...
    CHECK(permits.acquire(FairPermits::Clock::now() + 20ms, busy_b) ==
          FairPermits::Outcome::timed_out);
    // ...the quiet pipeline's worker takes it at once.
    CHECK(permits.acquire(FairPermits::Clock::now(), quiet) == FairPermits::Outcome::granted);
    CHECK(permits.held("busy") == 1);
    CHECK(permits.held("quiet") == 1);
    permits.release("quiet");
    permits.release("busy");
    CHECK(permits.in_use() == 0);
    CHECK(permits.held("busy") == 0);
}

TEST_CASE("a lone busy pipeline uses every connection but the reserve, and the reserve is capped") {
    FairPermits permits(16, 1);
    std::vector<std::unique_ptr<FairPermits::Ticket>> workers;
    for (int i = 0; i < 15; ++i) {
        workers.push_back(std::make_unique<FairPermits::Ticket>("busy"));
        CHECK(permits.acquire(FairPermits::Clock::now(), *workers.back()) ==
              FairPermits::Outcome::granted);
    }
    FairPermits::Ticket sixteenth("busy");
    CHECK(permits.acquire(FairPermits::Clock::now() + 10ms, sixteenth) ==
          FairPermits::Outcome::timed_out);
    for (int i = 0; i < 15; ++i)
        permits.release("busy");
    // A reserve as large as the pool would stop a second borrow for ever: it is capped at one
    // less, and a pool of one has none.
    CHECK(FairPermits(2, 5).reserve() == 1);
    FairPermits single(1, 1);
    FairPermits::Ticket only("busy");
    CHECK(single.reserve() == 0);
    CHECK(single.acquire(FairPermits::Clock::now(), only) == FairPermits::Outcome::granted);
    single.release("busy");
    CHECK(single.acquire(FairPermits::Clock::now(), only) == FairPermits::Outcome::granted);
}

TEST_CASE("a released slot goes to the pipeline holding the fewest, ahead of earlier waiters") {
    FairPermits permits(2);
    FairPermits::Ticket busy_a("busy"), busy_b("busy"), busy_c("busy"), quiet("quiet");
    REQUIRE(permits.acquire(FairPermits::Clock::now(), busy_a) == FairPermits::Outcome::granted);
    REQUIRE(permits.acquire(FairPermits::Clock::now(), busy_b) == FairPermits::Outcome::granted);
    std::mutex order_lock;
    std::vector<std::string> order;
    auto waiter = [&](FairPermits::Ticket& t, const char* name) {
        return std::thread([&, name] {
            if (permits.acquire(FairPermits::Clock::now() + 10s, t) !=
                FairPermits::Outcome::granted)
                return;
            std::lock_guard<std::mutex> guard(order_lock);
            order.push_back(name);
        });
    };
    std::thread c = waiter(busy_c, "busy");  // waits first
    until_waiting(permits, 1);
    std::thread q = waiter(quiet, "quiet");
    until_waiting(permits, 2);
    permits.release("busy");  // busy still holds one: the quiet pipeline's turn comes first
    auto give_up = std::chrono::steady_clock::now() + 5s;
    while (permits.waiting() != 1 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(1ms);
    // The slot went to the quiet pipeline although the busy waiter came first.
    CHECK(permits.held("quiet") == 1);
    CHECK(permits.held("busy") == 1);
    CHECK(permits.waiting() == 1);
    q.join();
    permits.release("busy");
    c.join();
    CHECK(order.size() == 2);
    CHECK(order.front() == "quiet");
    permits.release("busy");
    permits.release("quiet");
    CHECK(permits.in_use() == 0);
}

TEST_CASE("a waiting pipeline cut off by the reserve gets its turn once the pool frees up") {
    FairPermits permits(2, 1);
    FairPermits::Ticket busy_a("busy"), busy_b("busy");
    REQUIRE(permits.acquire(FairPermits::Clock::now(), busy_a) == FairPermits::Outcome::granted);
    std::atomic<int> outcome{-1};
    std::thread b([&] {
        outcome = static_cast<int>(permits.acquire(FairPermits::Clock::now() + 10s, busy_b));
    });
    until_waiting(permits, 1);
    permits.release("busy");  // the pipeline now holds none: its waiter may take any free slot
    b.join();
    CHECK(outcome.load() == static_cast<int>(FairPermits::Outcome::granted));
    permits.release("busy");
}
