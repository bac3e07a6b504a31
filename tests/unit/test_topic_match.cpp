// Routing-key patterns for routes: AMQP topic semantics, and the examples shipped in config/.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "config.h"
#include "topic_match.h"

using rmq2pg::topic_matches;
using rmq2pg::validate_topic_pattern;

TEST_CASE("'*' matches exactly one word and '#' zero or more", "[topic_match]") {
    CHECK(topic_matches("orders.*.created", "orders.eu.created"));
    CHECK_FALSE(topic_matches("orders.*.created", "orders.created"));
    CHECK_FALSE(topic_matches("orders.*.created", "orders.eu.west.created"));
    CHECK(topic_matches("orders.#", "orders"));
    CHECK(topic_matches("orders.#", "orders.eu.paid"));
    CHECK(topic_matches("#", ""));
    CHECK(topic_matches("#", "a.b.c"));
    CHECK(topic_matches("a.#.z", "a.z"));
    CHECK(topic_matches("a.#.z", "a.b.c.z"));
    CHECK_FALSE(topic_matches("a.#.z", "a.b.c"));
    CHECK(topic_matches("*.b.#", "a.b"));
    CHECK_FALSE(topic_matches("orders", "orders.eu"));
    CHECK_FALSE(topic_matches("orders.eu", "orders"));
}

TEST_CASE("a pattern with a wildcard inside a word is refused", "[topic_match]") {
    CHECK_FALSE(validate_topic_pattern("orders.*.created"));
    CHECK_FALSE(validate_topic_pattern("#"));
    CHECK(validate_topic_pattern("orders.eu*"));
    CHECK(validate_topic_pattern("#orders"));
    CHECK(validate_topic_pattern(""));
}

TEST_CASE("routes are read in order with their own targets, and a bad pattern names its line",
          "[topic_match]") {
    const char* yaml = R"(amqp: { urls: ["amqp://h/"] }
postgres: { url: "postgresql://h/db" }
pipelines:
  - name: p
    queue: q
    dedupe: message_id
    routes:
      - match: "a.*"
        table: s.ta
        mode: upsert
        key: [id]
        version: v
        delete_when: { field: /op, equals: "delete" }
        columns: { id: /id, v: /v }
      - match: "#"
        table: tb
        columns: { x: $body }
)";
    auto config = rmq2pg::load_config_text(yaml, "test.yaml");
    const auto& p = config.pipelines.at(0);
    REQUIRE(p.routes.size() == 2);
    CHECK(p.targets().size() == 2);
    CHECK(p.routes[0].table_schema == "s");
    CHECK(p.routes[0].version == "v");
    CHECK(p.routes[0].delete_when->equals == "delete");
    CHECK(p.routes[1].qualified_table() == "public.tb");
    CHECK(p.dedupe == "message_id");

    std::string bad = yaml;
    bad.replace(bad.find("\"a.*\""), 5, "\"a.b*\"");
    try {
        rmq2pg::load_config_text(bad, "test.yaml");
        FAIL("accepted a bad pattern");
    } catch (const rmq2pg::ConfigError& e) {
        CHECK_THAT(e.problems().at(0),
                   Catch::StartsWith("test.yaml:8: pipelines[0].routes[0].match"));
    }
    std::string mixed = yaml;
    mixed.replace(mixed.find("    routes:"), 0, "    table: x\n");
    CHECK_THROWS_WITH(rmq2pg::load_config_text(mixed, "test.yaml"),
                      Catch::Contains("belongs to each route"));
}

TEST_CASE("version and delete_when need mode upsert", "[topic_match]") {
    const char* yaml = R"(amqp: { urls: ["amqp://h/"] }
postgres: { url: "postgresql://h/db" }
pipelines:
  - name: p
    queue: q
    table: t
    mode: ignore
    key: [id]
    version: v
    delete_when: { field: op, equals: "delete" }
    columns: { id: /id, v: /v }
)";
    try {
        rmq2pg::load_config_text(yaml, "test.yaml");
        FAIL("accepted");
    } catch (const rmq2pg::ConfigError& e) {
        std::string all;
        for (const auto& p : e.problems())
            all += p + "\n";
        CHECK_THAT(all, Catch::Contains("test.yaml:9: pipelines[0].version: needs mode: upsert"));
        CHECK_THAT(all,
                   Catch::Contains("pipelines[0].delete_when.field: 'op' is not a JSON Pointer"));
    }
}

TEST_CASE("every shipped example configuration loads", "[topic_match]") {
    namespace fs = std::filesystem;
    int loaded = 0;
    // telemetry-protobuf.yaml reads the descriptor set CMake makes from its telemetry.proto.
    ::setenv("RMQ2PG_DESCRIPTOR_DIR", RMQ2PG_EXAMPLE_DESCRIPTOR_DIR, 1);
    for (const auto& entry :
         fs::directory_iterator(fs::path(RMQ2PG_SOURCE_DIR) / "config" / "examples")) {
        if (entry.path().extension() != ".yaml")
            continue;  // the .proto of an example
        INFO(entry.path());
        CHECK_NOTHROW(rmq2pg::load_config_file(entry.path().string()));
        ++loaded;
    }
    CHECK(loaded >= 2);
}
