// The HTTP endpoints' connection policy without sockets: phase deadlines and the connection cap
// (eviction of the connection that has waited longest for a request).
#include <catch2/catch.hpp>

#include <algorithm>

#include "http_connection_guard.h"

using namespace rmq2pg;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Why = ConnectionGuard::Why;

namespace {

const ConnectionGuard::Clock::time_point t0{};

std::vector<int> ids(const std::vector<ConnectionGuard::Cut>& cuts) {
    std::vector<int> out;
    for (const auto& c : cuts)
        out.push_back(c.id);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("a connection that sends no complete request within the deadline is cut, once") {
    ConnectionGuard guard({10, seconds(10)});
    guard.opened(7, t0);
    CHECK(guard.expired(t0 + milliseconds(9999)).empty());
    auto cuts = guard.expired(t0 + seconds(10));
    REQUIRE(cuts.size() == 1);
    CHECK(cuts[0].id == 7);
    CHECK(cuts[0].why == Why::request_deadline);
    CHECK(guard.open() == 0);
    CHECK(guard.expired(t0 + seconds(60)).empty());
    guard.closed(7);
    CHECK(guard.open() == 0);
}

TEST_CASE("each phase has its own deadline: request, response, then the next request") {
    ConnectionGuard guard({10, seconds(10)});
    guard.opened(7, t0);
    guard.request_started(7, t0 + seconds(9));
    CHECK(guard.expired(t0 + seconds(18)).empty());
    auto slow_reader = guard.expired(t0 + seconds(19));
    REQUIRE(slow_reader.size() == 1);
    CHECK(slow_reader[0].why == Why::response_deadline);

    guard.opened(8, t0);
    guard.request_started(8, t0 + seconds(1));
    guard.request_finished(8, t0 + seconds(2));
    CHECK(guard.expired(t0 + seconds(11)).empty());
    auto idle = guard.expired(t0 + seconds(12));
    REQUIRE(idle.size() == 1);
    CHECK(idle[0].id == 8);
    CHECK(idle[0].why == Why::idle_deadline);
}

TEST_CASE("beyond the cap a new connection evicts the one waiting longest for its request") {
    ConnectionGuard guard({3, seconds(10)});
    CHECK(guard.opened(1, t0).empty());
    CHECK(guard.opened(2, t0 + seconds(1)).empty());
    CHECK(guard.opened(3, t0 + seconds(2)).empty());
    guard.request_started(1, t0 + seconds(3));  // inside a request: never evicted
    auto cuts = guard.opened(4, t0 + seconds(4));
    REQUIRE(cuts.size() == 1);
    CHECK(cuts[0].id == 2);
    CHECK(cuts[0].why == Why::evicted);
    CHECK(guard.open() == 3);
    // An evicted connection is not cut again by its deadline, and its close frees nothing twice.
    CHECK(ids(guard.expired(t0 + seconds(12))) == std::vector<int>{3});
    guard.closed(2);
    guard.closed(3);
    CHECK(guard.open() == 2);
}

TEST_CASE(
    "a kept-alive connection waits from its last response, so it is evicted before an older "
    "one that is still sending") {
    ConnectionGuard guard({2, seconds(10)});
    guard.opened(1, t0);
    guard.opened(2, t0 + seconds(1));
    guard.request_started(2, t0 + seconds(1));
    guard.request_finished(2, t0 + seconds(2));
    guard.request_started(1, t0 + seconds(3));
    guard.request_finished(1, t0 + seconds(4));
    CHECK(ids(guard.opened(3, t0 + seconds(5))) == std::vector<int>{2});
}

TEST_CASE(
    "when every other connection is inside a request the cap is exceeded, not the newcomer "
    "cut") {
    ConnectionGuard guard({1, seconds(10)});
    guard.opened(1, t0);
    guard.request_started(1, t0);
    CHECK(guard.opened(2, t0).empty());
    CHECK(guard.open() == 2);
}

TEST_CASE("a socket number reused after its close starts a new connection") {
    ConnectionGuard guard({10, seconds(10)});
    guard.opened(5, t0);
    guard.expired(t0 + seconds(10));
    guard.closed(5);
    guard.opened(5, t0 + seconds(11));
    CHECK(guard.open() == 1);
    CHECK(guard.expired(t0 + seconds(20)).empty());
    CHECK(ids(guard.expired(t0 + seconds(21))) == std::vector<int>{5});
}
