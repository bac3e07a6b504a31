// Batch closing rules, driven with explicit time points (no clock, no sleeps).
#include <catch2/catch.hpp>

#include <chrono>

#include "batch_policy.h"

using rmq2pg::BatchLimits;
using rmq2pg::BatchPolicy;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

BatchLimits limits(std::size_t messages, std::size_t bytes, std::int64_t delay_ms) {
    BatchLimits l;
    l.max_messages = messages;
    l.max_bytes = bytes;
    l.max_delay_ms = delay_ms;
    return l;
}

const BatchPolicy::Clock::time_point t0 = BatchPolicy::Clock::time_point{} + std::chrono::hours(1);

}  // namespace

TEST_CASE("an empty batch never closes", "[batch_policy]") {
    BatchPolicy policy(limits(10, 1000, 50));
    CHECK(policy.empty());
    CHECK(policy.messages() == 0);
    CHECK(policy.bytes() == 0);
    CHECK_FALSE(policy.should_close(t0));
    CHECK_FALSE(policy.should_close(t0 + std::chrono::hours(24)));

    SECTION("not even with max_delay_ms 0") {
        BatchPolicy zero(limits(10, 1000, 0));
        CHECK_FALSE(zero.should_close(t0));
    }
}

TEST_CASE("a batch closes when it holds max_messages", "[batch_policy]") {
    BatchPolicy policy(limits(3, 1000000, 1000));
    policy.add(10, t0);
    policy.add(10, t0);
    CHECK_FALSE(policy.should_close(t0));
    policy.add(10, t0);
    CHECK(policy.messages() == 3);
    CHECK(policy.should_close(t0));

    SECTION("max_messages 1 closes at every message") {
        BatchPolicy one(limits(1, 1000000, 1000));
        one.add(1, t0);
        CHECK(one.should_close(t0));
    }
}

TEST_CASE("a batch closes when it reaches max_bytes", "[batch_policy]") {
    BatchPolicy policy(limits(1000, 100, 1000));
    policy.add(40, t0);
    policy.add(59, t0);
    CHECK(policy.bytes() == 99);
    CHECK_FALSE(policy.should_close(t0));
    policy.add(1, t0);
    CHECK(policy.bytes() == 100);
    CHECK(policy.should_close(t0));

    SECTION("going past max_bytes closes too") {
        BatchPolicy over(limits(1000, 100, 1000));
        over.add(60, t0);
        over.add(60, t0);
        CHECK(over.should_close(t0));
    }
    SECTION("one message bigger than max_bytes closes the batch by itself") {
        BatchPolicy big(limits(1000, 100, 1000));
        big.add(5000, t0);
        CHECK(big.messages() == 1);
        CHECK(big.should_close(t0));
    }
    SECTION("zero-byte messages count only as messages") {
        BatchPolicy empty_bodies(limits(2, 100, 1000));
        empty_bodies.add(0, t0);
        CHECK_FALSE(empty_bodies.should_close(t0));
        empty_bodies.add(0, t0);
        CHECK(empty_bodies.should_close(t0));
    }
}

TEST_CASE("a batch closes at max_delay after its first message even when not full",
          "[batch_policy]") {
    BatchPolicy policy(limits(1000, 1000000, 50));
    policy.add(10, t0);
    CHECK_FALSE(policy.should_close(t0));
    CHECK_FALSE(policy.should_close(t0 + milliseconds(49)));
    CHECK_FALSE(policy.should_close(t0 + milliseconds(50) - microseconds(1)));
    CHECK(policy.should_close(t0 + milliseconds(50)));
    CHECK(policy.should_close(t0 + milliseconds(500)));

    SECTION("later messages do not push the deadline back") {
        BatchPolicy p(limits(1000, 1000000, 50));
        p.add(10, t0);
        p.add(10, t0 + milliseconds(30));
        p.add(10, t0 + milliseconds(49));
        CHECK_FALSE(p.should_close(t0 + milliseconds(49)));
        CHECK(p.should_close(t0 + milliseconds(50)));
    }
    SECTION("max_delay_ms 0 closes as soon as a message is in") {
        BatchPolicy p(limits(1000, 1000000, 0));
        p.add(1, t0);
        CHECK(p.should_close(t0));
    }
}

TEST_CASE("reset empties the batch and the next one starts its own delay", "[batch_policy]") {
    BatchPolicy policy(limits(3, 100, 50));
    policy.add(60, t0);
    policy.add(60, t0);
    REQUIRE(policy.should_close(t0));
    policy.reset();
    CHECK(policy.empty());
    CHECK(policy.messages() == 0);
    CHECK(policy.bytes() == 0);
    CHECK_FALSE(policy.should_close(t0 + milliseconds(1000)));

    // The first batch's start (t0) must not count against the second batch.
    const auto t1 = t0 + milliseconds(1000);
    policy.add(10, t1);
    CHECK(policy.messages() == 1);
    CHECK(policy.bytes() == 10);
    CHECK_FALSE(policy.should_close(t1 + milliseconds(49)));
    CHECK(policy.should_close(t1 + milliseconds(50)));
    CHECK(policy.wait_budget(t1 + milliseconds(20), milliseconds(999)) == milliseconds(30));
}

TEST_CASE("wait_budget is the time left until the batch is due", "[batch_policy]") {
    BatchPolicy policy(limits(1000, 1000000, 50));

    SECTION("an empty batch may wait the idle time") {
        CHECK(policy.wait_budget(t0, milliseconds(250)) == milliseconds(250));
        CHECK(policy.wait_budget(t0, milliseconds(0)) == milliseconds(0));
    }
    SECTION("right after the first message: the whole delay") {
        policy.add(1, t0);
        CHECK(policy.wait_budget(t0, milliseconds(250)) == milliseconds(50));
    }
    SECTION("part way: what is left") {
        policy.add(1, t0);
        policy.add(1, t0 + milliseconds(10));
        CHECK(policy.wait_budget(t0 + milliseconds(20), milliseconds(250)) == milliseconds(30));
        CHECK(policy.wait_budget(t0 + milliseconds(49), milliseconds(250)) == milliseconds(1));
    }
    SECTION("a partial millisecond left rounds up, so the wait never ends early") {
        policy.add(1, t0);
        CHECK(policy.wait_budget(t0 + microseconds(49001), milliseconds(250)) == milliseconds(1));
        CHECK(policy.wait_budget(t0 + microseconds(100), milliseconds(250)) == milliseconds(50));
    }
    SECTION("at or past the deadline: zero, never negative") {
        policy.add(1, t0);
        CHECK(policy.wait_budget(t0 + milliseconds(50), milliseconds(250)) == milliseconds(0));
        CHECK(policy.wait_budget(t0 + milliseconds(5000), milliseconds(250)) == milliseconds(0));
    }
    SECTION("the idle time does not cap a batch's budget") {
        policy.add(1, t0);
        CHECK(policy.wait_budget(t0, milliseconds(10)) == milliseconds(50));
    }
}

TEST_CASE("a batch's delay counts from when its first message can have arrived", "[batch_policy]") {
    BatchPolicy policy(limits(100, 1000000, 50));
    // Found waiting at t0 + 30 ms, after a write that began at t0: it may have come at t0.
    policy.add(10, t0 + milliseconds(30), t0);
    CHECK_FALSE(policy.due(t0 + milliseconds(49)));
    CHECK(policy.due(t0 + milliseconds(50)));
    CHECK(policy.wait_budget(t0 + milliseconds(30), milliseconds(100)) == milliseconds(20));
    // Later messages do not move it, whenever they arrived.
    policy.add(10, t0 + milliseconds(40), t0 - milliseconds(500));
    CHECK_FALSE(policy.due(t0 + milliseconds(49)));
    CHECK_FALSE(policy.full());
    CHECK(policy.should_close(t0 + milliseconds(50)));

    SECTION("an arrival later than now changes nothing") {
        BatchPolicy later(limits(100, 1000000, 50));
        later.add(10, t0, t0 + milliseconds(20));
        CHECK(later.due(t0 + milliseconds(50)));
    }
}

TEST_CASE("full and due are the two reasons to close, and an empty batch has neither",
          "[batch_policy]") {
    BatchPolicy policy(limits(2, 1000000, 50));
    CHECK_FALSE(policy.full());
    CHECK_FALSE(policy.due(t0 + std::chrono::hours(1)));
    policy.add(10, t0);
    CHECK_FALSE(policy.full());
    CHECK(policy.due(t0 + milliseconds(50)));
    policy.add(10, t0);
    CHECK(policy.full());
    policy.reset();
    CHECK_FALSE(policy.full());
    CHECK_FALSE(policy.due(t0 + milliseconds(50)));
}
