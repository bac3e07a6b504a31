// The pure parts of the shared AMQP connection (amqp_hub.h): a worker's inbox, the channel
// table with its generation filter, how many connections a config gets; and a hub whose broker
// cannot be reached (a closed local port: no broker, no network).
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "amqp_hub.h"
#include "hub_channels.h"
#include "hub_inbox.h"
#include "hub_plan.h"

using namespace rmq2pg;
using namespace std::chrono_literals;

namespace {

Delivery delivery(std::uint64_t tag) {
    Delivery d;
    d.delivery_tag = tag;
    return d;
}

Config with_pipelines(std::initializer_list<int> workers, int pool_size = 16) {
    Config c;
    c.postgres_pool_size = pool_size;
    for (int w : workers) {
        PipelineConfig p;
        p.workers = w;
        c.pipelines.push_back(p);
    }
    return c;
}

}  // namespace

TEST_CASE("an inbox hands its deliveries out in the order they arrived") {
    Inbox inbox;
    inbox.put(delivery(1));
    inbox.put(delivery(2));
    CHECK(inbox.size() == 2);
    CHECK(inbox.take(0ms)->delivery_tag == 1);
    CHECK(inbox.take(0ms)->delivery_tag == 2);
    CHECK_FALSE(inbox.take(0ms).has_value());
}

TEST_CASE("an empty inbox returns nothing once the worker's deadline passed") {
    Inbox inbox;
    auto started = std::chrono::steady_clock::now();
    CHECK_FALSE(inbox.take(30ms).has_value());
    CHECK(std::chrono::steady_clock::now() - started >= 30ms);
}

TEST_CASE("a worker waiting on its inbox wakes when the hub puts a delivery") {
    Inbox inbox;
    std::thread hub([&] {
        std::this_thread::sleep_for(20ms);
        inbox.put(delivery(7));
    });
    auto got = inbox.take(5s);
    hub.join();
    REQUIRE(got.has_value());
    CHECK(got->delivery_tag == 7);
}

TEST_CASE("a failed inbox drops what it held and throws the hub's error to its worker") {
    Inbox inbox;
    inbox.put(delivery(1));
    inbox.fail(AmqpError(AmqpError::Kind::connection, "shared connection lost"));
    CHECK(inbox.size() == 0);  // the broker requeues them: processing them would duplicate
    CHECK(inbox.failed());
    inbox.put(delivery(2));  // a late delivery of the dead channel
    CHECK(inbox.size() == 0);
    try {
        inbox.take(1s);
        FAIL("take() did not throw");
    } catch (const AmqpError& e) {
        CHECK(e.kind() == AmqpError::Kind::connection);
        CHECK(std::string(e.what()) == "shared connection lost");
    }
    CHECK_THROWS_AS(inbox.check(), AmqpError);
    // The first failure is the one reported.
    inbox.fail(AmqpError(AmqpError::Kind::channel, "consumer closed"));
    CHECK_THROWS_WITH(inbox.check(), "shared connection lost");
}

TEST_CASE("a worker waiting on its inbox wakes at once when its channel fails") {
    Inbox inbox;
    std::thread hub([&] {
        std::this_thread::sleep_for(20ms);
        inbox.fail(AmqpError(AmqpError::Kind::channel, "broker cancelled the consumer"));
    });
    auto started = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(inbox.take(5s), AmqpError);
    hub.join();
    CHECK(std::chrono::steady_clock::now() - started < 4s);
}

TEST_CASE("consumers get channels from 2 up; channel 1 stays the hub's own") {
    ChannelTable table(4);
    CHECK(table.open(10, 1) == std::optional<std::uint16_t>(2));
    CHECK(table.open(11, 1) == std::optional<std::uint16_t>(3));
    CHECK(table.open(12, 1) == std::optional<std::uint16_t>(4));
    CHECK_FALSE(table.open(13, 1).has_value());  // channel_max reached
    CHECK(table.subscription_on(3) == std::optional<std::uint64_t>(11));
    CHECK_FALSE(table.subscription_on(1).has_value());
    CHECK(table.open_channels() == 3);
}

TEST_CASE("a closed channel's number is reused only after every other free one") {
    ChannelTable table(6);
    REQUIRE(table.open(1, 1) == std::optional<std::uint16_t>(2));
    table.close(1);
    // Frames rabbitmq-c queued for channel 2 during its close are read before 2 returns.
    CHECK(table.open(2, 1) == std::optional<std::uint16_t>(3));
    CHECK(table.open(3, 1) == std::optional<std::uint16_t>(4));
    CHECK(table.open(4, 1) == std::optional<std::uint16_t>(5));
    CHECK(table.open(5, 1) == std::optional<std::uint16_t>(6));
    CHECK(table.open(6, 1) == std::optional<std::uint16_t>(2));
    CHECK_FALSE(table.subscription_on(7).has_value());
}

TEST_CASE("a settle applies only to the channel and connection its deliveries came on") {
    ChannelTable table(100);
    auto channel = table.open(5, 3);
    REQUIRE(channel.has_value());
    CHECK(table.channel_for(5, 3) == channel);
    SECTION("one posted for an older connection is dropped") {
        CHECK_FALSE(table.channel_for(5, 2).has_value());
    }
    SECTION("one posted after the channel closed is dropped") {
        table.close(5);
        CHECK_FALSE(table.channel_for(5, 3).has_value());
        CHECK_FALSE(table.subscription_on(*channel).has_value());
    }
    SECTION("after the connection is lost every settle is dropped") {
        table.open(6, 3);
        auto lost = table.connection_lost();
        CHECK(lost == std::vector<std::uint64_t>{5, 6});
        CHECK_FALSE(table.channel_for(5, 3).has_value());
        CHECK_FALSE(table.channel_for(6, 3).has_value());
        CHECK(table.open_channels() == 0);
    }
}

TEST_CASE("workers that fit the pool keep a connection each unless amqp.connections is set") {
    CHECK(hub_count(with_pipelines({4, 1, 11})) == 0);
    Config explicit_count = with_pipelines({4, 1, 11});
    explicit_count.amqp_connections = 2;
    CHECK(hub_count(explicit_count) == 2);
    explicit_count.amqp_connections = 100;
    CHECK(hub_count(explicit_count) == 16);  // never more connections than consumers
}

TEST_CASE("pooled workers share one connection per 200 consumers when left automatic") {
    Config c = with_pipelines({}, 16);
    for (int i = 0; i < 200; ++i)
        c.pipelines.push_back(with_pipelines({1}).pipelines.front());
    CHECK(uses_pg_pool(c));
    CHECK(hub_count(c) == 1);
    c.pipelines.push_back(c.pipelines.front());
    CHECK(hub_count(c) == 2);
    c.amqp_connections = 4;
    CHECK(hub_count(c) == 4);
}

TEST_CASE("stream workers keep their own connections and do not count for the hubs") {
    Config c = with_pipelines({2}, 1);
    PipelineConfig stream;
    stream.workers = 3;
    stream.streams = {"events"};
    c.pipelines.push_back(stream);
    CHECK(queue_workers(c) == 2);
    CHECK(hub_count(c) == 1);
    Config only_streams = with_pipelines({}, 1);
    only_streams.pipelines.push_back(stream);
    only_streams.amqp_connections = 3;
    CHECK(hub_count(only_streams) == 0);
}

TEST_CASE("a hub that cannot reach its broker fails a subscribe with its reason, not a hang") {
    auto config = std::make_shared<Config>();
    std::string error;
    // Port 1 on the loopback: refused at once, no broker and no network involved.
    auto url = parse_amqp_url("amqp://guest:guest@127.0.0.1:1/", error);
    REQUIRE(url.has_value());
    config->amqp_urls.push_back(*url);
    config->retry.initial_ms = 50;
    config->retry.max_ms = 100;
    AmqpHub hub(config, 0);
    AmqpHub::ConsumerSpec spec;
    spec.queue = "orders";
    spec.prefetch = 10;
    spec.consumer_tag = "test";
    auto started = std::chrono::steady_clock::now();
    try {
        hub.subscribe(spec, 20s);
        FAIL("subscribe() did not throw");
    } catch (const AmqpError& e) {
        CHECK(e.kind() == AmqpError::Kind::connection);
        CHECK_THAT(e.what(), Catch::Contains("127.0.0.1:1"));
    }
    CHECK(std::chrono::steady_clock::now() - started < 15s);
    CHECK_FALSE(hub.connected());
    CHECK(hub.channels() == 0);
    started = std::chrono::steady_clock::now();
    hub.stop(5s);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}
