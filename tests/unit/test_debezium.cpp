// format: debezium — logical types converted exactly, positions encoded in log order per
// connector, envelopes with and without the schema wrapper, tombstones, bad envelopes, keys
// from the message key, and columns by name.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "batch.h"
#include "columns_by_name.h"
#include "debezium_envelope.h"
#include "debezium_types.h"
#include "row_mapper.h"

using namespace rmq2pg;

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(RMQ2PG_SOURCE_DIR) + "/tests/fixtures/debezium/" + name);
    REQUIRE(in.good());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string two_complement(std::initializer_list<unsigned char> bytes) {
    return std::string(bytes.begin(), bytes.end());
}

// Compares positions as PostgreSQL's numeric would: by length, then digits.
bool numeric_less(const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
}

std::string position_of(const std::string& payload_json) {
    simdjson::dom::parser parser;
    simdjson::dom::object payload = parser.parse(payload_json).get_object();
    std::string error;
    auto v = encode_position(payload, error);
    INFO(error);
    REQUIRE(v);
    return *v;
}

TableSchema customers() {
    TableSchema t;
    t.schema = "inventory";
    t.name = "customers";
    t.columns = {{"id", "integer", TypeCategory::text, true},
                 {"first_name", "text", TypeCategory::text, false},
                 {"last_name", "text", TypeCategory::text, false},
                 {"email", "text", TypeCategory::text, false},
                 {"_rmq2pg_version", "numeric", TypeCategory::text, false}};
    t.primary_key = {"id"};
    return t;
}

PipelineConfig debezium_pipeline() {
    PipelineConfig p;
    p.name = "customers";
    p.queue = "q";
    p.format = MessageFormat::debezium;
    p.mode = WriteMode::upsert;
    p.version = "_rmq2pg_version";
    p.delete_when = DeleteRule{"/op", "d"};
    return p;
}

struct Mapped {
    std::optional<std::string> error;
    std::string row;
    bool skipped = false;
};

Mapped map_one(RowMapper& mapper, const std::string& body, const std::string& message_id = "") {
    Delivery d;
    d.body = body;
    d.message_id = message_id;
    Mapped m;
    m.error = mapper.append_row(d, m.row);
    m.skipped = mapper.skipped();
    return m;
}

}  // namespace

TEST_CASE("decimals from two's-complement bytes are exact at every scale and sign") {
    CHECK(decimal_from_twos_complement(two_complement({0x30, 0x39}), 2) == "123.45");
    CHECK(decimal_from_twos_complement(two_complement({0xCF, 0xC7}), 2) == "-123.45");
    CHECK(decimal_from_twos_complement(two_complement({0x00}), 0) == "0");
    CHECK(decimal_from_twos_complement(two_complement({0xFF}), 0) == "-1");
    CHECK(decimal_from_twos_complement(two_complement({0x01}), 10) == "0.0000000001");
    CHECK(decimal_from_twos_complement(two_complement({0xFF}), 10) == "-0.0000000001");
    CHECK(decimal_from_twos_complement(two_complement({0x00, 0x80}), 0) == "128");
    CHECK(decimal_from_twos_complement(two_complement({0x80}), 0) == "-128");
    // 2^64 - 1 needs 9 bytes with its sign byte: beyond every native integer.
    CHECK(decimal_from_twos_complement(
              two_complement({0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), 4) ==
          "1844674407370955.1615");
    CHECK(decimal_from_twos_complement(two_complement({0x05}), -2) == "500");
}

TEST_CASE("base64 decodes with and without padding and refuses other text") {
    CHECK(base64_decode("MDk=") == std::string("09"));
    CHECK(base64_decode("MDk") == std::string("09"));
    CHECK(base64_decode("AQID") == two_complement({1, 2, 3}));
    CHECK_FALSE(base64_decode("not base64!"));
}

TEST_CASE("dates and timestamps before 1970 and at microsecond precision are exact") {
    CHECK(date_from_days(0) == "1970-01-01");
    CHECK(date_from_days(-1) == "1969-12-31");
    CHECK(date_from_days(-719528) == "0001-01-01 BC");  // year 0 is 1 BC
    CHECK(date_from_days(-719162) == "0001-01-01");
    CHECK(date_from_days(2932896) == "9999-12-31");
    CHECK(timestamp_from_epoch(-1, TimeUnit::micros) == "1969-12-31 23:59:59.999999+00");
    CHECK(timestamp_from_epoch(1529507823123456, TimeUnit::micros) ==
          "2018-06-20 15:17:03.123456+00");
    CHECK(timestamp_from_epoch(1529507823123, TimeUnit::millis) == "2018-06-20 15:17:03.123000+00");
    CHECK(timestamp_from_epoch(1529507823123456789, TimeUnit::nanos) ==
          "2018-06-20 15:17:03.123456+00");
    CHECK(timestamp_from_epoch(-62135596800000000, TimeUnit::micros) ==
          "0001-01-01 00:00:00.000000+00");
    CHECK(time_of_day(0, TimeUnit::millis) == std::string("00:00:00.000000"));
    CHECK(time_of_day(86399999999, TimeUnit::micros) == std::string("23:59:59.999999"));
    CHECK(time_of_day(45296789012345, TimeUnit::nanos) == std::string("12:34:56.789012"));
    CHECK(time_of_day(86400000, TimeUnit::millis) == std::string("24:00:00.000000"));
    CHECK_FALSE(time_of_day(-1, TimeUnit::millis));
}

TEST_CASE("positions follow each connector's log order") {
    // PostgreSQL: the lsn.
    CHECK(position_of(R"({"source":{"connector":"postgresql","lsn":24023128},"ts_ms":1})") ==
          "24023128");
    // MySQL: binlog files compare by their number, then pos, then row.
    auto a = position_of(R"({"source":{"file":"mysql-bin.000009","pos":99999,"row":5}})");
    auto b = position_of(R"({"source":{"file":"mysql-bin.000010","pos":4,"row":0}})");
    auto c = position_of(R"({"source":{"file":"mysql-bin.000010","pos":4,"row":1}})");
    auto d = position_of(R"({"source":{"file":"mysql-bin.000010","pos":1000,"row":0}})");
    auto e = position_of(R"({"source":{"file":"mysql-bin.1000000","pos":4,"row":0}})");
    CHECK(numeric_less(a, b));
    CHECK(numeric_less(b, c));
    CHECK(numeric_less(c, d));
    CHECK(numeric_less(d, e));
    CHECK(b == "10" + std::string(19, '0') + "4" + std::string(20, '0'));
    // SQL Server: commit_lsn, then change_lsn, then event_serial_no.
    auto s1 = position_of(
        R"({"source":{"commit_lsn":"00000025:00000d98:0005","change_lsn":"00000025:00000d98:0002","event_serial_no":1}})");
    auto s2 = position_of(
        R"({"source":{"commit_lsn":"00000025:00000d98:0005","change_lsn":"00000025:00000d98:0002","event_serial_no":2}})");
    auto s3 = position_of(
        R"({"source":{"commit_lsn":"00000025:00000d98:0005","change_lsn":"00000025:00000d98:0003","event_serial_no":1}})");
    auto s4 = position_of(
        R"({"source":{"commit_lsn":"00000026:00000000:0001","change_lsn":"00000026:00000000:0001","event_serial_no":1}})");
    CHECK(numeric_less(s1, s2));
    CHECK(numeric_less(s2, s3));
    CHECK(numeric_less(s3, s4));
    CHECK(sqlserver_lsn_decimal("ffffffff:ffffffff:ffff") ==
          std::string("1208925819614629174706175"));
    // Anything else: ts_ms.
    CHECK(position_of(R"({"source":{"connector":"mongodb"},"ts_ms":1559033904863})") ==
          "1559033904863");
    CHECK(binlog_number("mysql-bin.000003") == std::string("3"));
    CHECK_FALSE(binlog_number("mysql-bin"));
}

TEST_CASE("columns by name take the table's columns and its primary key") {
    PipelineConfig p;
    p.mode = WriteMode::upsert;
    TableSchema table = customers();
    ColumnInfo generated{"full_name", "text", TypeCategory::text, false};
    generated.generated = true;
    table.columns.push_back(generated);
    TargetConfig resolved = resolve_target(p, p, table);
    REQUIRE(resolved.columns.size() == 5);  // not the generated column
    CHECK(resolved.columns_by_name);
    CHECK(resolved.columns[1].source.argument == "/first_name");
    CHECK(resolved.key == std::vector<std::string>{"id"});
    CHECK(pointer_to_field("a/b~c") == "/a~1b~0c");
}

TEST_CASE("json bodies by name count the fields no column takes") {
    PipelineConfig p;
    TableSchema t = customers();
    RowMapper mapper(resolve_target(p, p, t), t, p);
    auto m = map_one(mapper, R"({"id":1,"first_name":"A","extra":true,"more":1})");
    REQUIRE_FALSE(m.error);
    CHECK(m.row == "1\tA\t\\N\t\\N\t\\N");
    CHECK(mapper.take_unmapped() == 2);
    CHECK(mapper.first_unmapped() == "extra");
    CHECK(mapper.take_unmapped() == 0);
}

TEST_CASE("PostgreSQL change events map with and without the schema wrapper") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t = customers();
    RowMapper mapper(resolve_target(p, p, t), t, p);
    for (const char* name : {"postgres_create.json", "postgres_create_bare.json"}) {
        INFO(name);
        auto m = map_one(mapper, fixture(name));
        REQUIRE_FALSE(m.error);
        CHECK(m.row == "1004\tAnne\tKretchmar\tannek@noanswer.org\t24023128\tu");
    }
    auto del = map_one(mapper, fixture("postgres_delete.json"));
    REQUIRE_FALSE(del.error);
    CHECK(del.row == "1004\t\\N\t\\N\t\\N\t46523128\td");
    for (const char* name : {"postgres_tombstone.json", "postgres_truncate.json"}) {
        INFO(name);
        auto m = map_one(mapper, fixture(name));
        CHECK_FALSE(m.error);
        CHECK(m.skipped);
        CHECK(m.row.empty());
    }
    for (const char* body :
         {"", "default", "null", R"({"schema":{"type":"struct"},"payload":null})"}) {
        INFO(body);
        auto m = map_one(mapper, body);
        CHECK_FALSE(m.error);
        CHECK(m.skipped);
    }
}

TEST_CASE("a delete without a before image takes its key from the message key") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t = customers();
    RowMapper mapper(resolve_target(p, p, t), t, p);
    std::string body = R"({"before":null,"after":null,"source":{"lsn":7},"op":"d"})";
    auto m = map_one(mapper, body, R"({"id":1004})");
    REQUIRE_FALSE(m.error);
    CHECK(m.row == "1004\t\\N\t\\N\t\\N\t7\td");
    auto wrapped = map_one(mapper, body, R"({"schema":{"type":"struct"},"payload":{"id":9}})");
    REQUIRE_FALSE(wrapped.error);
    CHECK(wrapped.row == "9\t\\N\t\\N\t\\N\t7\td");
    auto none = map_one(mapper, body);
    REQUIRE(none.error);
    CHECK(*none.error == "delete without key column 'id' (not in before nor in the message key)");
}

TEST_CASE("bad envelopes are poison with a reason that says which") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t = customers();
    RowMapper mapper(resolve_target(p, p, t), t, p);
    auto no_op = map_one(mapper, R"({"after":{"id":1},"source":{"lsn":1}})");
    REQUIRE(no_op.error);
    CHECK(*no_op.error == "not a Debezium change event: no op field");
    auto unknown = map_one(mapper, R"({"op":"x","after":{"id":1},"source":{"lsn":1}})");
    REQUIRE(unknown.error);
    CHECK(*unknown.error == "not a Debezium change event: unknown op x (expected c, r, u, d or t)");
    auto no_after = map_one(mapper, R"({"op":"u","before":{"id":1},"source":{"lsn":1}})");
    REQUIRE(no_after.error);
    CHECK(*no_after.error == "op u without an after image");
    auto no_position = map_one(mapper, R"({"op":"c","after":{"id":1}})");
    REQUIRE(no_position.error);
    CHECK(no_position.error->find("no position to order the change by") == 0);
    auto not_json = map_one(mapper, "{\"op\":");
    CHECK(not_json.error);
    CHECK_FALSE(not_json.skipped);
}

TEST_CASE("MySQL change events carry their binlog position as the version") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t = customers();
    RowMapper mapper(resolve_target(p, p, t), t, p);
    for (const char* name : {"mysql_update.json", "mysql_update_bare.json"}) {
        INFO(name);
        auto m = map_one(mapper, fixture(name));
        REQUIRE_FALSE(m.error);
        CHECK(m.row == "1004\tAnne Marie\tKretchmar\tannek@noanswer.org\t3" + std::string(17, '0') +
                           "484" + std::string(20, '0') + "\tu");
    }
    auto r = map_one(mapper, fixture("mysql_snapshot_read.json"));
    REQUIRE_FALSE(r.error);
    CHECK(r.row.rfind("1001\tSally\tThomas\tsally.thomas@acme.com\t", 0) == 0);
}

TEST_CASE("logical types with the schema wrapper are converted exactly") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t;
    t.schema = "public";
    t.name = "types";
    t.primary_key = {"id"};
    t.columns = {{"id", "bigint", TypeCategory::text, true},
                 {"price", "numeric(10,2)", TypeCategory::text, false},
                 {"ratio", "numeric", TypeCategory::text, false},
                 {"born", "date", TypeCategory::timestamp, false},
                 {"at", "time without time zone", TypeCategory::text, false},
                 {"created", "timestamp without time zone", TypeCategory::timestamp, false},
                 {"zoned", "timestamp with time zone", TypeCategory::timestamp, false},
                 {"doc", "jsonb", TypeCategory::json, false},
                 {"uid", "uuid", TypeCategory::text, false},
                 {"mood", "text", TypeCategory::text, false},
                 {"blob", "bytea", TypeCategory::bytea, false},
                 {"_rmq2pg_version", "numeric", TypeCategory::text, false}};
    RowMapper mapper(resolve_target(p, p, t), t, p);
    auto m = map_one(mapper, fixture("postgres_types.json"));
    REQUIRE_FALSE(m.error);
    CHECK(m.row ==
          "1\t-123.45\t-0.0000000001\t1969-12-31\t23:59:59.999999\t1969-12-31 "
          "23:59:59.999999+00\t2018-06-20T13:37:03Z\t{\"a\": [1, 2]}\t"
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\thappy\t\\\\x010203\t100\tu");
}

TEST_CASE("a batch settles tombstones and truncates without a row and writes the rest") {
    PipelineConfig p = debezium_pipeline();
    TableSchema t = customers();
    // One route, no children: its AggregateMapper resolves the target as the worker does.
    std::vector<AggregateMapper> mappers;
    mappers.emplace_back(p, table_targets(p), 0, std::vector<const TableSchema*>{&t});
    Batch batch;
    std::vector<std::string> bodies = {fixture("postgres_create_bare.json"), "default",
                                       fixture("postgres_truncate.json"), R"({"op":"x"})"};
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        Delivery d;
        d.delivery_tag = i + 1;
        d.body = bodies[i];
        batch.add(std::move(d));
    }
    batch.map(p, mappers, false);
    const auto& m = batch.messages();
    CHECK(m[0].status == Batch::Status::pending);
    CHECK(m[1].status == Batch::Status::committed);
    CHECK((m[1].skipped && m[1].reason == "tombstone"));
    CHECK((m[2].skipped && m[2].reason == "truncate"));
    CHECK(m[3].status == Batch::Status::poison);
    CHECK(batch.pending() == Batch::Part{0});
    auto rows = batch.rows_of(batch.pending());
    REQUIRE(rows.size() == 1);
    CHECK(*rows[0].rows == "1004\tAnne\tKretchmar\tannek@noanswer.org\t24023128\tu");
    CHECK(batch.last_ackable_tag() == std::uint64_t{4});
}

TEST_CASE("a refused truncate is poison and the changes it dropped are written after all") {
    PipelineConfig p = debezium_pipeline();
    p.on_truncate = OnTruncate::truncate;
    TableSchema t = customers();
    std::vector<AggregateMapper> mappers;
    mappers.emplace_back(p, table_targets(p), 0, std::vector<const TableSchema*>{&t});
    Batch batch;
    std::string newer = fixture("postgres_update_bare.json");
    for (auto at = newer.find("24023200"); at != std::string::npos; at = newer.find("24023200"))
        newer.replace(at, 8, "99999999");
    // Delivery order: older, newer, the truncate (46523300), older again.
    std::vector<std::string> bodies = {fixture("postgres_create_bare.json"), newer,
                                       fixture("postgres_truncate.json"),
                                       fixture("postgres_update_bare.json")};
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        Delivery d;
        d.delivery_tag = i + 1;
        d.body = bodies[i];
        batch.add(std::move(d));
    }
    batch.map(p, mappers, false);
    REQUIRE(batch.pending() == Batch::Part{1, 2});
    // PostgreSQL refused the truncate of table 0: it is tried alone, first.
    auto parts = batch.split_truncate(batch.pending(), 0);
    REQUIRE(parts.size() == 2);
    CHECK(parts[1] == Batch::Part{2});
    CHECK(parts[0] == Batch::Part{1});
    CHECK(batch.split_truncate(Batch::Part{2}, 0).empty());
    batch.mark_poison(2, "truncate refused: permission denied");
    const auto& m = batch.messages();
    CHECK(m[2].status == Batch::Status::poison);
    CHECK((m[0].status == Batch::Status::pending && m[0].mapped && !m[0].before_truncate));
    CHECK((m[3].status == Batch::Status::pending && m[3].mapped));
    REQUIRE(batch.pending() == Batch::Part{0, 1, 3});
    auto rows = batch.rows_of(batch.pending());
    CHECK(!rows[0].truncate);
    CHECK(rows[0].count == 3);
}

TEST_CASE("on_truncate: truncate drops the batch's older changes and truncates before the rest") {
    PipelineConfig p = debezium_pipeline();
    p.on_truncate = OnTruncate::truncate;
    TableSchema t = customers();
    std::vector<AggregateMapper> mappers;
    mappers.emplace_back(p, table_targets(p), 0, std::vector<const TableSchema*>{&t});
    Batch batch;
    std::string newer = fixture("postgres_update_bare.json");
    REQUIRE(newer.find("24023200") != std::string::npos);
    for (auto at = newer.find("24023200"); at != std::string::npos; at = newer.find("24023200"))
        newer.replace(at, 8, "99999999");
    // Delivery order: older, newer, the truncate (46523300), older again.
    std::vector<std::string> bodies = {fixture("postgres_create_bare.json"), newer,
                                       fixture("postgres_truncate.json"),
                                       fixture("postgres_update_bare.json")};
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        Delivery d;
        d.delivery_tag = i + 1;
        d.body = bodies[i];
        batch.add(std::move(d));
    }
    batch.map(p, mappers, false);
    const auto& m = batch.messages();
    CHECK((m[0].status == Batch::Status::committed && m[0].before_truncate && !m[0].mapped));
    CHECK((m[1].status == Batch::Status::pending && m[1].mapped));
    CHECK((m[2].status == Batch::Status::pending && m[2].truncates && !m[2].skipped));
    CHECK(m[2].version == "46523300");
    CHECK((m[3].status == Batch::Status::committed && m[3].before_truncate));
    REQUIRE(batch.pending() == Batch::Part{1, 2});
    auto rows = batch.rows_of(batch.pending());
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].truncate);
    CHECK(rows[0].truncate_version == "46523300");
    CHECK(rows[0].count == 1);
    CHECK(*rows[0].rows == "1004\tAnne Marie\tKretchmar\tannek@noanswer.org\t99999999\tu");
    // Halved after a refusal: the truncate goes with the part tried first (the last one).
    auto halves = batch.split(batch.pending(), std::nullopt, 0);
    REQUIRE(halves.size() == 2);
    CHECK(halves[1] == Batch::Part{2});
    auto first = batch.rows_of(halves[1]);
    CHECK((first[0].truncate && first[0].count == 0));
    auto second = batch.rows_of(halves[0]);
    CHECK((!second[0].truncate && second[0].count == 1));
    // Blamed row 0 (the newer change): the rest, the truncate, is tried first.
    auto blamed = batch.split(batch.pending(), std::size_t{0}, 0);
    REQUIRE(blamed.size() == 2);
    CHECK(blamed[0] == Batch::Part{1});
    CHECK(blamed[1] == Batch::Part{2});
}
