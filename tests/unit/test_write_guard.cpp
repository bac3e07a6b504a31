// The write guard: keep-alives while a call blocks, the deadline, and nothing after the watch.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "write_guard.h"

using namespace rmq2pg;
using namespace std::chrono_literals;

TEST_CASE("a watch sends keep-alives while the call blocks and expires once at its deadline",
          "[write_guard]") {
    WriteGuard guard;
    std::atomic<int> keep_alives{0}, expiries{0};
    {
        auto watch = guard.watch(
            WriteGuard::Clock::now() + 150ms, [&] { expiries++; }, 20ms, [&] { keep_alives++; });
        std::this_thread::sleep_for(300ms);  // the "blocked call"
        CHECK(watch.expired());
    }
    CHECK(expiries == 1);
    CHECK(keep_alives >= 5);  // ~15 in 300 ms; a loaded machine still manages 5
    int after = keep_alives;
    std::this_thread::sleep_for(60ms);
    CHECK(keep_alives == after);  // nothing runs once the watch ended
}

TEST_CASE("a call that ends before its deadline never sees the expiry", "[write_guard]") {
    WriteGuard guard;
    std::atomic<int> expiries{0};
    {
        auto watch = guard.watch(
            WriteGuard::Clock::now() + 200ms, [&] { expiries++; }, 0ms, [] {});
        std::this_thread::sleep_for(10ms);
        CHECK_FALSE(watch.expired());
    }
    std::this_thread::sleep_for(250ms);
    CHECK(expiries == 0);
    // The guard serves the next watch of the same worker.
    {
        auto watch = guard.watch(
            WriteGuard::Clock::now() + 20ms, [&] { expiries++; }, 0ms, [] {});
        std::this_thread::sleep_for(100ms);
    }
    CHECK(expiries == 1);
}
