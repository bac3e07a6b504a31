// Exponential backoff with equal jitter; seeded, so sequences are exact.
#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

#include "backoff.h"

using rmq2pg::Backoff;
using std::chrono::milliseconds;

namespace {

std::vector<milliseconds> take(Backoff& b, int n) {
    std::vector<milliseconds> out;
    for (int i = 0; i < n; ++i)
        out.push_back(b.next_delay());
    return out;
}

}  // namespace

TEST_CASE("backoff delays grow exponentially, each within [d/2, d]", "[backoff]") {
    for (std::uint64_t seed : {1u, 2u, 42u, 12345u}) {
        INFO("seed " << seed);
        Backoff b(milliseconds(100), milliseconds(100000), seed);
        std::int64_t d = 100;
        for (int i = 0; i < 10; ++i) {
            INFO("attempt " << i << ", nominal " << d << " ms");
            CHECK(b.failures() == i);
            auto delay = b.next_delay().count();
            CHECK(delay >= d / 2);
            CHECK(delay <= d);
            d *= 2;
        }
        CHECK(b.failures() == 10);
    }
}

TEST_CASE("backoff delays are capped at max", "[backoff]") {
    Backoff b(milliseconds(100), milliseconds(1000), 7);
    // nominal: 100, 200, 400, 800, then 1000 for ever
    auto delays = take(b, 50);
    for (std::size_t i = 4; i < delays.size(); ++i) {
        INFO("attempt " << i);
        CHECK(delays[i] >= milliseconds(500));
        CHECK(delays[i] <= milliseconds(1000));
    }

    SECTION("very many failures do not overflow") {
        Backoff many(milliseconds(3600000), milliseconds(3600000), 9);
        for (int i = 0; i < 200; ++i) {
            auto d = many.next_delay();
            REQUIRE(d >= milliseconds(1800000));
            REQUIRE(d <= milliseconds(3600000));
        }
        CHECK(many.failures() == 200);
    }
    SECTION("a max below initial is raised to initial") {
        Backoff low(milliseconds(100), milliseconds(10), 3);
        for (int i = 0; i < 5; ++i) {
            auto d = low.next_delay();
            CHECK(d >= milliseconds(50));
            CHECK(d <= milliseconds(100));
        }
    }
    SECTION("odd caps keep the upper bound") {
        Backoff odd(milliseconds(101), milliseconds(101), 11);
        for (int i = 0; i < 100; ++i) {
            auto d = odd.next_delay();
            REQUIRE(d >= milliseconds(50));
            REQUIRE(d <= milliseconds(101));
        }
    }
}

TEST_CASE("the jitter actually varies the delay", "[backoff]") {
    Backoff b(milliseconds(1000), milliseconds(1000), 5);
    auto delays = take(b, 50);
    bool varied = false;
    for (const auto& d : delays)
        varied = varied || d != delays.front();
    CHECK(varied);
}

TEST_CASE("reset starts the sequence over at the initial delay", "[backoff]") {
    Backoff b(milliseconds(100), milliseconds(100000), 1);
    take(b, 8);
    CHECK(b.failures() == 8);
    b.reset();
    CHECK(b.failures() == 0);
    auto d = b.next_delay();
    CHECK(d >= milliseconds(50));
    CHECK(d <= milliseconds(100));
    CHECK(b.failures() == 1);
    auto d2 = b.next_delay();
    CHECK(d2 >= milliseconds(100));
    CHECK(d2 <= milliseconds(200));
}

TEST_CASE("the same seed gives the same sequence", "[backoff]") {
    Backoff a(milliseconds(100), milliseconds(30000), 2024);
    Backoff b(milliseconds(100), milliseconds(30000), 2024);
    CHECK(take(a, 30) == take(b, 30));

    SECTION("a different seed gives a different sequence") {
        Backoff c(milliseconds(100), milliseconds(30000), 2024);
        Backoff d(milliseconds(100), milliseconds(30000), 2025);
        CHECK(take(c, 30) != take(d, 30));
    }
}

TEST_CASE("a zero initial delay stays zero", "[backoff]") {
    Backoff b(milliseconds(0), milliseconds(0), 1);
    for (int i = 0; i < 5; ++i)
        CHECK(b.next_delay() == milliseconds(0));
}
