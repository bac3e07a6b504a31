// schema_evolution: basic, the pure part: event schema → columns, and the diff against a table.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "schema_evolution.h"

using namespace rmq2pg;

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(RMQ2PG_SOURCE_DIR) + "/tests/fixtures/debezium/" + name);
    REQUIRE(in.good());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TableSchema missing_table() {
    TableSchema t;
    t.schema = "inventory";
    t.name = "customers";
    t.exists = false;
    return t;
}

TableSchema customers() {
    TableSchema t;
    t.schema = "inventory";
    t.name = "customers";
    t.columns = {{"id", "integer"}, {"first_name", "text"}, {"_rmq2pg_version", "numeric"}};
    t.primary_key = {"id"};
    return t;
}

const std::string kKey =
    R"({"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],)"
    R"("optional":false,"name":"dbserver1.inventory.customers.Key"},"payload":{"id":1004}})";

}  // namespace

TEST_CASE("Kafka Connect and Debezium types become the documented column types") {
    CHECK(column_type_of("int8", "") == "smallint");
    CHECK(column_type_of("int16", "") == "smallint");
    CHECK(column_type_of("int32", "") == "integer");
    CHECK(column_type_of("int64", "") == "bigint");
    CHECK(column_type_of("float32", "") == "real");
    CHECK(column_type_of("float64", "") == "double precision");
    CHECK(column_type_of("boolean", "") == "boolean");
    CHECK(column_type_of("string", "") == "text");
    CHECK(column_type_of("bytes", "") == "bytea");
    CHECK(column_type_of("bytes", "org.apache.kafka.connect.data.Decimal") == "numeric");
    CHECK(column_type_of("struct", "io.debezium.data.VariableScaleDecimal") == "numeric");
    CHECK(column_type_of("int32", "io.debezium.time.Date") == "date");
    CHECK(column_type_of("int64", "io.debezium.time.MicroTime") == "time");
    CHECK(column_type_of("int64", "io.debezium.time.MicroTimestamp") == "timestamp");
    CHECK(column_type_of("string", "io.debezium.time.ZonedTimestamp") == "timestamptz");
    CHECK(column_type_of("int64", "io.debezium.time.MicroDuration") == "interval");
    CHECK(column_type_of("string", "io.debezium.data.Json") == "jsonb");
    CHECK(column_type_of("string", "io.debezium.data.Uuid") == "uuid");
    CHECK(column_type_of("string", "io.debezium.data.Enum") == "text");
    CHECK(column_type_of("array", "", "int32", "") == "integer[]");
    CHECK(column_type_of("array", "", "struct", "") == "jsonb");
    CHECK(column_type_of("map", "") == "jsonb");
    CHECK(column_type_of("bytes", "io.debezium.data.Bits") == "text");
}

TEST_CASE("a change event's schema gives its fields as columns and its message key the key") {
    EventColumns event;
    REQUIRE_FALSE(read_event_columns(fixture("postgres_create.json"), kKey, event));
    CHECK(event.has_schema);
    CHECK_FALSE(event.skip);
    REQUIRE(event.fields.size() == 4);
    CHECK((event.fields[0].name == "id" && event.fields[0].type == "integer"));
    CHECK((event.fields[3].name == "email" && event.fields[3].type == "text"));
    CHECK(event.key == std::vector<std::string>{"id"});

    REQUIRE_FALSE(read_event_columns(fixture("postgres_create.json"), "", event));
    CHECK(event.key.empty());
    REQUIRE_FALSE(read_event_columns(fixture("postgres_create_bare.json"), "", event));
    CHECK_FALSE(event.has_schema);
    REQUIRE_FALSE(read_event_columns("default", "", event));
    CHECK(event.skip);
    REQUIRE_FALSE(read_event_columns(fixture("postgres_truncate.json"), "", event));
    CHECK(event.skip);
    CHECK(read_event_columns("{", "", event).has_value());
}

TEST_CASE("a missing table is created with its key and the version column") {
    std::string why;
    auto statements = evolution_statements(
        missing_table(), {{"id", "integer"}, {"name", "text"}, {"at", "timestamp"}}, {"id"},
        "_rmq2pg_version", why);
    CHECK(why.empty());
    REQUIRE(statements.size() == 1);
    CHECK(statements[0] ==
          "CREATE TABLE IF NOT EXISTS \"inventory\".\"customers\" (\"id\" integer NOT NULL, "
          "\"name\" text, \"at\" timestamp, \"_rmq2pg_version\" numeric, PRIMARY KEY (\"id\"))");
}

TEST_CASE("a missing table without a key, or a key that is no field, is not created") {
    std::string why;
    CHECK(evolution_statements(missing_table(), {{"id", "integer"}}, {}, "_rmq2pg_version", why)
              .empty());
    CHECK(why.find("the change has no key") != std::string::npos);
    CHECK(
        evolution_statements(missing_table(), {{"id", "integer"}}, {"code"}, "_rmq2pg_version", why)
            .empty());
    CHECK(why.find("key field 'code'") != std::string::npos);
}

TEST_CASE("fields without a column add nullable columns, and nothing when none is missing") {
    std::string why;
    auto statements = evolution_statements(customers(), {{"id", "integer"}, {"first_name", "text"}},
                                           {"id"}, "_rmq2pg_version", why);
    CHECK(statements.empty());
    statements = evolution_statements(customers(),
                                      {{"id", "integer"}, {"email", "text"}, {"score", "numeric"}},
                                      {"id"}, "_rmq2pg_version", why);
    REQUIRE(statements.size() == 1);
    CHECK(statements[0] ==
          "ALTER TABLE \"inventory\".\"customers\" ADD COLUMN IF NOT EXISTS \"email\" text, "
          "ADD COLUMN IF NOT EXISTS \"score\" numeric");
}

TEST_CASE("a field whose type its column cannot hold is a conflict, never a retype") {
    EventColumns event;
    event.has_schema = true;
    event.fields = {{"id", "bigint"}};
    auto conflict = evolution_conflict(customers(), event);
    REQUIRE(conflict);
    CHECK(conflict->find("field 'id' (bigint by its schema) conflicts with column 'id'") == 0);
    CHECK(conflict->find("never retypes") != std::string::npos);
    event.fields = {{"id", "smallint"}, {"first_name", "bigint"}};
    CHECK_FALSE(evolution_conflict(customers(), event));
}

TEST_CASE("columns accept their own type, wider numbers, and strings") {
    CHECK(column_accepts("integer", "integer"));
    CHECK(column_accepts("bigint", "integer"));
    CHECK_FALSE(column_accepts("integer", "bigint"));
    CHECK(column_accepts("numeric(12,2)", "numeric"));
    CHECK(column_accepts("numeric(20,0)", "bigint"));
    CHECK_FALSE(column_accepts("integer", "numeric"));
    CHECK(column_accepts("my_enum", "text"));
    CHECK(column_accepts("character varying(20)", "integer"));
    CHECK(column_accepts("jsonb", "bigint"));
    CHECK(column_accepts("timestamp with time zone", "timestamp"));
    CHECK(column_accepts("timestamp without time zone", "timestamptz"));
    CHECK_FALSE(column_accepts("date", "timestamp"));
    CHECK(column_accepts("time without time zone", "time"));
    CHECK_FALSE(column_accepts("boolean", "integer"));
    CHECK(column_accepts("integer[]", "integer[]"));
    CHECK_FALSE(column_accepts("bytea", "integer"));
}

// Absent fields keep the column's DEFAULT (columns by name): the row's marker and the SQL.
#include "columns_by_name.h"
#include "row_mapper.h"
#include "write_plan.h"

namespace {

TableSchema with_defaults() {
    TableSchema t;
    t.schema = "public";
    t.name = "events";
    t.columns = {{"id", "bigint"}, {"note", "text"}, {"status", "text"}, {"at", "timestamptz"}};
    t.columns[2].default_expr = "'new'::text";
    t.columns[3].default_expr = "now()";
    t.columns[3].category = TypeCategory::timestamp;
    return t;
}

PipelineConfig events_pipeline(WriteMode mode) {
    PipelineConfig p;
    p.name = "p";
    p.queue = "q";
    p.table_schema = "public";
    p.table_name = "events";
    p.mode = mode;
    if (mode != WriteMode::insert)
        p.key = {"id"};
    return p;
}

std::string row_of(RowMapper& mapper, const std::string& body) {
    Delivery d;
    d.body = body;
    std::string out;
    auto error = mapper.append_row(d, out);
    REQUIRE_FALSE(error);
    return out;
}

}  // namespace

TEST_CASE("a row says which defaulted columns its message lacked, and a JSON null is no absence") {
    PipelineConfig p = events_pipeline(WriteMode::insert);
    TableSchema t = with_defaults();
    TargetConfig resolved = resolve_target(p, p, t);
    RowMapper mapper(resolved, t, p);
    CHECK(row_of(mapper, R"({"id":1,"note":"a","status":"done","at":"2020-01-01T00:00:00Z"})") ==
          "1\ta\tdone\t2020-01-01T00:00:00Z\t\\N");
    CHECK(row_of(mapper, R"({"id":2,"status":null})") == "2\t\\N\t\\N\t\\N\t01");
    CHECK(row_of(mapper, R"({"id":3})") == "3\t\\N\t\\N\t\\N\t11");
}

TEST_CASE("the SQL writes a defaulted column's DEFAULT where its field was absent") {
    for (WriteMode mode : {WriteMode::insert, WriteMode::upsert}) {
        PipelineConfig p = events_pipeline(mode);
        TargetConfig resolved = resolve_target(p, p, with_defaults());
        WritePlan plan = plan_target(p, resolved, 0);
        CHECK(plan.copy_target ==
              "rmq2pg_batch_0 (\"id\", \"note\", \"status\", \"at\", rmq2pg_absent)");
        REQUIRE(plan.create_staging.size() == 1);
        CHECK(plan.create_staging[0].find("NULL::text AS rmq2pg_absent") != std::string::npos);
        CHECK(plan.then.back().find(
                  "CASE WHEN substr(l.rmq2pg_absent, 1, 1) = '1' THEN 'new'::text ELSE "
                  "l.\"status\" END, CASE WHEN substr(l.rmq2pg_absent, 2, 1) = '1' THEN now() "
                  "ELSE l.\"at\" END") != std::string::npos);
    }
}

TEST_CASE("a key column of an upsert is never left to its DEFAULT") {
    PipelineConfig p = events_pipeline(WriteMode::upsert);
    TableSchema t = with_defaults();
    t.columns[0].default_expr = "nextval('events_id_seq'::regclass)";
    TargetConfig resolved = resolve_target(p, p, t);
    CHECK(resolved.columns[0].column_default.empty());
    CHECK(resolved.columns[2].column_default == "'new'::text");
    TargetConfig inserted =
        resolve_target(events_pipeline(WriteMode::insert), events_pipeline(WriteMode::insert), t);
    CHECK_FALSE(inserted.columns[0].column_default.empty());
}

TEST_CASE("a table without defaults keeps COPY straight into it in insert mode") {
    PipelineConfig p = events_pipeline(WriteMode::insert);
    TableSchema t = with_defaults();
    t.columns[2].default_expr.clear();
    t.columns[3].default_expr.clear();
    WritePlan plan = plan_target(p, resolve_target(p, p, t), 0);
    CHECK(plan.staging.empty());
}
