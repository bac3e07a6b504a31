// The pure parts of streams: `start:` forms, the offsets a write stores, the sharing of streams
// among workers, the in-order split of a refused part, the config rules of `streams:`, and the
// lag behind the end the broker tells.
#include <catch2/catch.hpp>

#include "aggregate.h"
#include "aggregate_mapper.h"
#include "batch.h"
#include "config.h"
#include "stream_end.h"
#include "stream_offsets.h"
#include "stream_start.h"

using rmq2pg::Batch;
using rmq2pg::ConfigError;
using rmq2pg::Delivery;
using rmq2pg::StreamClaim;
using rmq2pg::StreamStart;

namespace {

StreamStart start_of(const std::string& text) {
    std::string error;
    auto start = rmq2pg::parse_stream_start(text, error);
    REQUIRE(start);
    return *start;
}

Delivery at(std::string_view stream, std::int64_t offset, std::uint64_t tag) {
    Delivery d;
    d.stream = stream;
    d.stream_offset = offset;
    d.delivery_tag = tag;
    return d;
}

std::string config_problems(const std::string& pipeline) {
    std::string yaml =
        "amqp:\n  urls: [\"amqp://h/\"]\npostgres:\n  url: postgresql://h/db\n"
        "pipelines:\n  - name: p\n    table: t\n" +
        pipeline;
    try {
        rmq2pg::load_config_text(yaml, "s.yaml");
    } catch (const ConfigError& e) {
        std::string all;
        for (const auto& p : e.problems())
            all += p + "\n";
        return all;
    }
    return "";
}

}  // namespace

TEST_CASE("start: accepts every form of the issue and refuses anything else") {
    CHECK(start_of("first").kind == StreamStart::Kind::first);
    CHECK(start_of("last").kind == StreamStart::Kind::last);
    CHECK(start_of("next").kind == StreamStart::Kind::next);
    CHECK(start_of("12345").kind == StreamStart::Kind::offset);
    CHECK(start_of("12345").value == 12345);
    CHECK(start_of("30m").value == 1800);
    CHECK(start_of("6h").value == 6 * 3600);
    CHECK(start_of("7D").value == 7 * 86400);
    CHECK(start_of("2026-11-24T08:00:00Z").kind == StreamStart::Kind::time);
    CHECK(start_of("2026-11-24T08:00:00Z").value == 1795507200);
    CHECK(start_of("2026-11-24T09:00:00.250+01:00").value == 1795507200);
    CHECK(rmq2pg::start_epoch_seconds(start_of("30m"), 10000) == 8200);
    for (const char* bad :
         {"", "firs", "-5", "30x", "2026-11-24T08:00:00", "2026-13-01T00:00:00Z", "m", "1.5h"}) {
        std::string error;
        CHECK_FALSE(rmq2pg::parse_stream_start(bad, error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE(
    "a write stores, per stream, the offset past what it settles and never past a pending "
    "message") {
    Batch batch;
    batch.add(at("a", 10, 1));
    batch.add(at("b", 50, 2));
    batch.add(at("a", 11, 3));
    batch.add(at("a", 12, 4));
    std::vector<StreamClaim> held = {{"a", 7, {}, {}}, {"b", 9, {}, {}}};
    std::vector<std::size_t> first_two = {0, 1};
    auto offsets = rmq2pg::offsets_to_store(batch, &first_two, held);
    REQUIRE(offsets.size() == 2);
    CHECK(offsets[0].stream == "a");
    CHECK(offsets[0].next_offset == 11);  // 11 is still pending
    CHECK(offsets[0].epoch == 7);
    CHECK(offsets[1].stream == "b");
    CHECK(offsets[1].next_offset == 51);
    CHECK(offsets[1].epoch == 9);

    batch.mark_committed(first_two);
    batch.mark_dead_lettered(2);  // a poison message already published to a.dead
    std::vector<std::size_t> last = {3};
    offsets = rmq2pg::offsets_to_store(batch, &last, held);
    CHECK(offsets[0].next_offset == 13);

    // Poison not yet dead-lettered holds the offset back.
    Batch other;
    other.add(at("a", 10, 1));
    other.add(at("a", 11, 2));
    other.mark_poison(0, "bad");
    std::vector<std::size_t> second = {1};
    CHECK(rmq2pg::offsets_to_store(other, &second, held)[0].next_offset == 10);
}

TEST_CASE("a stream the worker does not hold fences the write") {
    Batch batch;
    batch.add(at("c", 1, 1));
    std::vector<std::size_t> all = {0};
    auto offsets = rmq2pg::offsets_to_store(batch, &all, {});
    REQUIRE(offsets.size() == 1);
    CHECK(offsets[0].epoch == -1);
}

TEST_CASE("streams are shared out among the live workers, each its share plus or minus one") {
    std::vector<std::string> streams = {"e-5", "e-0", "e-3", "e-1", "e-4", "e-2", "e-6"};
    std::vector<std::string> members = {"a", "b", "c"};
    auto owners = rmq2pg::preferred_owners(streams, members);
    std::vector<int> count(3, 0);
    for (auto o : owners)
        count[o]++;
    CHECK(count == std::vector<int>{3, 2, 2});
    // Every instance computes the same, whatever the order of its config.
    auto reversed = streams;
    std::reverse(reversed.begin(), reversed.end());
    auto again = rmq2pg::preferred_owners(reversed, members);
    for (std::size_t i = 0; i < streams.size(); ++i)
        CHECK(again[streams.size() - 1 - i] == owners[i]);
}

TEST_CASE("in order, a refused part splits into before the blamed row, the row, after it") {
    // The blamed row is counted over the part's mapped rows, so the batch is mapped first.
    rmq2pg::Config config = rmq2pg::load_config_text(
        "amqp:\n  urls: [\"amqp://h/\"]\npostgres:\n  url: postgresql://h/db\n"
        "pipelines:\n  - name: p\n    table: t\n    streams: [a]\n    columns: {id: /id}\n",
        "s.yaml");
    const rmq2pg::PipelineConfig& pipeline = config.pipelines.at(0);
    auto tables = rmq2pg::table_targets(pipeline);
    rmq2pg::TableSchema schema;
    schema.schema = "public";
    schema.name = "t";
    schema.columns.push_back({"id", "text", rmq2pg::TypeCategory::text, false});
    std::vector<const rmq2pg::TableSchema*> schemas = {&schema};
    std::vector<rmq2pg::AggregateMapper> mappers;
    mappers.emplace_back(pipeline, tables, 0, schemas);
    std::vector<std::string> bodies;
    for (int i = 0; i < 5; ++i)
        bodies.push_back("{\"id\": " + std::to_string(i) + "}");
    Batch batch;
    for (std::uint64_t i = 0; i < 5; ++i) {
        Delivery d = at("a", static_cast<std::int64_t>(i), i + 1);
        d.body = bodies[i];
        batch.add(std::move(d));
    }
    batch.map(pipeline, mappers, false);
    Batch::Part part = {0, 1, 2, 3, 4};
    REQUIRE(batch.pending() == part);
    auto parts = batch.split(part, 2, 0, true);
    // Tried last first: {0, 1}, then {2}, then {3, 4}.
    REQUIRE(parts.size() == 3);
    CHECK(parts[2] == Batch::Part{0, 1});
    CHECK(parts[1] == Batch::Part{2});
    CHECK(parts[0] == Batch::Part{3, 4});
    auto edge = batch.split(part, 0, 0, true);
    REQUIRE(edge.size() == 2);
    CHECK(edge[1] == Batch::Part{0});
    CHECK(edge[0] == Batch::Part{1, 2, 3, 4});
}

TEST_CASE("streams: config rules") {
    CHECK(config_problems("    streams: [a, b]\n    columns: {id: /id, o: $stream_offset}\n")
              .empty());
    CHECK(config_problems("    queue: q\n    streams: [a]\n    columns: {id: /id}\n")
              .find("s.yaml:9: pipelines[0].streams: a pipeline reads either a queue or streams") !=
          std::string::npos);
    CHECK(config_problems("    queue: q\n    start: first\n    columns: {id: /id}\n")
              .find("pipelines[0].start: applies to streams only") != std::string::npos);
    CHECK(config_problems("    streams: [a]\n    start: yesterday\n    columns: {id: /id}\n")
              .find("s.yaml:9: pipelines[0].start: 'yesterday' is not first, last, next") !=
          std::string::npos);
    CHECK(config_problems("    streams: [a, a]\n    columns: {id: /id}\n")
              .find("'a' is listed twice") != std::string::npos);
    CHECK(config_problems("    streams: [a]\n    on_error: reject\n    columns: {id: /id}\n")
              .find("pipelines[0].on_error: 'reject' needs a queue's dead-letter exchange") !=
          std::string::npos);
    CHECK(config_problems("    queue: q\n    columns: {id: /id, o: $stream_offset}\n")
              .find("$stream_offset needs 'streams:'") != std::string::npos);
    CHECK(config_problems("    streams: [a]\n    lease_s: 1\n    columns: {id: /id}\n")
              .find("pipelines[0].lease_s: value 1 is out of range 2..3600") != std::string::npos);
}

TEST_CASE("the lag is the broker's end (first offset + message_count) minus the stored offset") {
    rmq2pg::StreamEnd end;
    end.stream = "events";
    SECTION("unknown until the broker was read and the stream committed once") {
        CHECK_FALSE(rmq2pg::stream_lag(end, 10));
        end.known = true;
        end.messages = 100;
        CHECK_FALSE(rmq2pg::stream_lag(end, std::nullopt));
        CHECK_FALSE(rmq2pg::stream_lag(end, 10));  // first offset not probed yet
        CHECK_FALSE(rmq2pg::end_offset_of(end));
    }
    SECTION("a stream never truncated starts at 0") {
        end.known = true;
        end.messages = 100;
        end.first_offset = 0;
        CHECK(rmq2pg::end_offset_of(end) == 100);
        CHECK(rmq2pg::stream_lag(end, 40) == 60);
        CHECK(rmq2pg::stream_lag(end, 100) == 0);
    }
    SECTION("retention moved the first offset: the count alone would understate the lag") {
        end.known = true;
        end.messages = 100;
        end.first_offset = 5000;
        CHECK(rmq2pg::stream_lag(end, 5010) == 90);
    }
    SECTION("a stored offset past the broker's older count reads as no lag") {
        end.known = true;
        end.messages = 100;
        end.first_offset = 0;
        CHECK(rmq2pg::stream_lag(end, 130) == 0);
    }
    SECTION("an empty stream has nothing to read") {
        end.known = true;
        CHECK(rmq2pg::stream_lag(end, 0) == 0);
    }
}
