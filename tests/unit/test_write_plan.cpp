// The SQL of each write mode (src/write_plan.cpp): which statements run, in which order, with
// which conflict clause, guard and lock, and that any identifier or name is quoted.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "write_plan.h"

using rmq2pg::DeleteRule;
using rmq2pg::PipelineConfig;
using rmq2pg::plan_target;
using rmq2pg::TargetConfig;
using rmq2pg::WriteMode;
using rmq2pg::WritePlan;

namespace {

void map_columns(TargetConfig& target, const std::vector<std::string>& columns) {
    for (const auto& c : columns) {
        rmq2pg::ColumnMapping m;
        m.column = c;
        m.source_text = "/" + c;
        m.source = {rmq2pg::ColumnSource::Kind::json_pointer, "/" + c};
        target.columns.push_back(m);
    }
}

// A pipeline "p" writing public.orders (id, account, amount, version) keyed by id.
PipelineConfig orders(WriteMode mode) {
    PipelineConfig p;
    p.name = "p";
    p.queue = "q";
    p.table_name = "orders";
    p.mode = mode;
    if (mode != WriteMode::insert)
        p.key = {"id"};
    map_columns(p, {"id", "account", "amount", "version"});
    return p;
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The index of the first statement of `then` that contains `part`, or -1.
int find(const WritePlan& plan, const std::string& part) {
    for (std::size_t i = 0; i < plan.then.size(); ++i)
        if (has(plan.then[i], part))
            return static_cast<int>(i);
    return -1;
}

int count(const WritePlan& plan, const std::string& part) {
    int n = 0;
    for (const auto& s : plan.then)
        n += has(s, part) ? 1 : 0;
    return n;
}

const std::string kLock = "pg_advisory_xact_lock";

}  // namespace

TEST_CASE("insert mode copies straight into the table and runs nothing after", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::insert);
    WritePlan plan = plan_target(p, p, 0);
    CHECK(plan.copy_target == R"("public"."orders" ("id", "account", "amount", "version"))");
    CHECK(plan.staging.empty());
    CHECK(plan.create_staging.empty());
    CHECK(plan.then.empty());
}

TEST_CASE("insert with dedupe stages, drops seen ids, then inserts in delivery order",
          "[write_plan]") {
    PipelineConfig p = orders(WriteMode::insert);
    p.dedupe = "message_id";
    WritePlan plan = plan_target(p, p, 0);
    CHECK(plan.staging == "rmq2pg_batch_0");
    CHECK(plan.copy_target ==
          R"(rmq2pg_batch_0 ("id", "account", "amount", "version", "rmq2pg_dedupe"))");
    REQUIRE(plan.then.size() == 3);
    // In-batch duplicates: the later delivery goes.
    CHECK(has(plan.then[0], "DELETE FROM rmq2pg_batch_0 a USING rmq2pg_batch_0 b"));
    CHECK(has(plan.then[0], "a.ctid > b.ctid"));
    // Ids already in the inbox go, under the pipeline's name.
    CHECK(has(plan.then[1], "INSERT INTO rmq2pg_state.inbox (pipeline, message_id) SELECT 'p'"));
    CHECK(has(plan.then[1], "ON CONFLICT DO NOTHING RETURNING message_id"));
    CHECK(has(plan.then[1], "DELETE FROM rmq2pg_batch_0 s WHERE NOT EXISTS"));
    CHECK(plan.then[2] == R"(INSERT INTO "public"."orders" ("id", "account", "amount", "version"))"
                          R"( SELECT "id", "account", "amount", "version" FROM rmq2pg_batch_0)"
                          " ORDER BY ctid");
    CHECK(count(plan, "ON CONFLICT (") == 0);
    CHECK(find(plan, kLock) == -1);
}

TEST_CASE("every staged mode creates its staging table in the batch's transaction",
          "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    WritePlan plan = plan_target(p, p, 3);
    CHECK(plan.staging == "rmq2pg_batch_3");
    REQUIRE_FALSE(plan.create_staging.empty());
    std::string ddl;
    for (const auto& s : plan.create_staging)
        ddl += s + ";";
    CHECK(has(ddl, "CREATE TEMP TABLE rmq2pg_batch_3"));
    // Dropped with the transaction: nothing stays on a server connection a pooler shares.
    CHECK(has(ddl, "ON COMMIT DROP"));
    CHECK(has(ddl, R"(SELECT "id", "account", "amount", "version", NULL::text AS rmq2pg_dedupe, )"
                   R"(NULL::text AS rmq2pg_op FROM "public"."orders" WITH NO DATA)"));
    // One statement: no sequence to create, no ALTER.
    CHECK(plan.create_staging.size() == 1);
}

TEST_CASE("ignore mode keeps the first delivery per key and never updates", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::ignore);
    WritePlan plan = plan_target(p, p, 0);
    CHECK(plan.copy_target == R"(rmq2pg_batch_0 ("id", "account", "amount", "version"))");
    REQUIRE(plan.then.size() == 1);
    const std::string& sql = plan.then[0];
    CHECK(has(sql, R"(INSERT INTO "public"."orders" AS t ("id", "account", "amount", "version"))"));
    CHECK(has(sql, R"(SELECT DISTINCT ON ("id") * FROM rmq2pg_batch_0 ORDER BY "id", ctid))"));
    CHECK_FALSE(has(sql, "ctid DESC"));
    CHECK(has(sql, R"(ON CONFLICT ("id") DO NOTHING)"));
    CHECK_FALSE(has(sql, "DO UPDATE"));
    CHECK(find(plan, kLock) == -1);
}

TEST_CASE("upsert mode keeps the last delivery per key and updates every non-key column",
          "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    WritePlan plan = plan_target(p, p, 0);
    REQUIRE(plan.then.size() == 1);
    const std::string& sql = plan.then[0];
    CHECK(has(sql, R"(ORDER BY "id", ctid DESC))"));
    CHECK(has(sql, R"(ON CONFLICT ("id") DO UPDATE SET "account" = EXCLUDED."account", )"
                   R"("amount" = EXCLUDED."amount", "version" = EXCLUDED."version")"));
    CHECK_FALSE(has(sql, "\"id\" = EXCLUDED"));
    CHECK_FALSE(has(sql, " WHERE t."));  // no version guard
    CHECK(find(plan, kLock) == -1);
}

TEST_CASE("upsert of key columns only does nothing on conflict", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.columns.clear();
    map_columns(p, {"id"});
    WritePlan plan = plan_target(p, p, 0);
    REQUIRE(plan.then.size() == 1);
    CHECK(has(plan.then[0], R"(ON CONFLICT ("id") DO NOTHING)"));
}

TEST_CASE("a compound key is the DISTINCT ON and the conflict target", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.key = {"account", "id"};
    WritePlan plan = plan_target(p, p, 0);
    const std::string& sql = plan.then.back();
    CHECK(has(sql, R"(DISTINCT ON ("account", "id"))"));
    CHECK(has(sql, R"(ON CONFLICT ("account", "id") DO UPDATE SET "amount" = EXCLUDED."amount", )"
                   R"("version" = EXCLUDED."version")"));
}

TEST_CASE("a version guard locks its batch's keys, prefers the highest version and refuses older",
          "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.version = "version";
    WritePlan plan = plan_target(p, p, 0);
    REQUIRE(plan.then.size() == 2);
    // One lock per distinct key of the batch, taken in ascending hash order after the sort.
    // And the table's lock, shared: an exclusive holder (an aggregate, an older version) waits.
    CHECK(plan.then[0] ==
          "SELECT pg_advisory_xact_lock_shared(hashtext('rmq2pg:public.orders')); "
          "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtext('rmq2pg:public.orders'), "
          "k) FROM (SELECT DISTINCT hashtext(jsonb_build_array(s.\"id\")::text) & 63 AS k FROM "
          "rmq2pg_batch_0 s ORDER BY k OFFSET 0) o) l");
    const std::string& sql = plan.then[1];
    CHECK(has(sql, R"(ORDER BY "id", "version" DESC NULLS LAST, ctid DESC))"));
    CHECK(has(sql, R"( WHERE t."version" IS NULL OR t."version" < EXCLUDED."version")"));
    // Without deletes there is no tombstone to consult.
    CHECK_FALSE(has(sql, "tombstones"));
}

TEST_CASE("delete_when without a version deletes by key under the lock, without tombstones",
          "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.delete_when = DeleteRule{"/op", "delete"};
    WritePlan plan = plan_target(p, p, 0);
    CHECK(has(plan.copy_target, R"("version", "rmq2pg_op"))"));
    REQUIRE(plan.then.size() == 3);
    CHECK(has(plan.then[0], kLock));
    CHECK(has(plan.then[1], R"(DELETE FROM "public"."orders" t USING (SELECT DISTINCT ON ("id"))"));
    CHECK(has(plan.then[1], R"(l.rmq2pg_op = 'd' AND t."id" = l."id")"));
    CHECK_FALSE(has(plan.then[1], "<="));
    CHECK(count(plan, "tombstones") == 0);
    CHECK(has(plan.then[2], "l.rmq2pg_op IS DISTINCT FROM 'd'"));
    CHECK(has(plan.then[2], R"(ON CONFLICT ("id") DO UPDATE)"));
}

TEST_CASE("delete_when with a version keeps tombstones that refuse older updates", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.version = "version";
    p.delete_when = DeleteRule{"/op", "delete"};
    WritePlan plan = plan_target(p, p, 0);
    int lock = find(plan, kLock);
    int del = find(plan, R"(DELETE FROM "public"."orders")");
    int tomb = find(plan, "INSERT INTO rmq2pg_state.tombstones");
    int ins = find(plan, R"(INSERT INTO "public"."orders")");
    REQUIRE(plan.then.size() == 4);
    CHECK(lock == 0);
    CHECK(del == 1);
    CHECK(tomb == 2);
    CHECK(ins == 3);
    // A delete removes only rows whose version is not newer than its own.
    CHECK(has(plan.then[del], R"(AND t."version" <= l."version")"));
    // The tombstone keeps the highest delete version of the key.
    CHECK(has(plan.then[tomb], R"(SELECT 'public.orders', jsonb_build_array(l."id"), )"
                               R"(to_jsonb(l."version")"));
    CHECK(has(plan.then[tomb],
              "ON CONFLICT (table_name, key) DO UPDATE SET version = "
              "EXCLUDED.version, deleted_at = now() WHERE tb.version < "
              "EXCLUDED.version"));
    // An update not newer than the tombstone is refused; the row guard still applies.
    CHECK(has(plan.then[ins],
              "NOT EXISTS (SELECT 1 FROM rmq2pg_state.tombstones tb WHERE "
              "tb.table_name = 'public.orders' AND tb.key = "
              R"(jsonb_build_array(l."id") AND tb.version >= to_jsonb(l."version")))"));
    CHECK(has(plan.then[ins], R"(t."version" < EXCLUDED."version")"));
}

TEST_CASE("dedupe runs before the lock and the writes of an upsert", "[write_plan]") {
    PipelineConfig p = orders(WriteMode::upsert);
    p.dedupe = "/event_id";
    p.version = "version";
    p.delete_when = DeleteRule{"/op", "delete"};
    WritePlan plan = plan_target(p, p, 0);
    CHECK(has(plan.copy_target, R"("rmq2pg_dedupe", "rmq2pg_op"))"));
    int in_batch = find(plan, "a.rmq2pg_dedupe = b.rmq2pg_dedupe");
    int inbox = find(plan, "rmq2pg_state.inbox");
    int lock = find(plan, kLock);
    int upsert = find(plan, R"(INSERT INTO "public"."orders")");
    CHECK(in_batch == 0);
    CHECK(inbox == 1);
    CHECK(lock == 2);
    CHECK(upsert == static_cast<int>(plan.then.size()) - 1);
}

TEST_CASE("each route writes its own table through its own staging table", "[write_plan]") {
    PipelineConfig p;
    p.name = "events";
    p.queue = "q";
    TargetConfig created;
    created.match = "order.created";
    created.table_name = "orders";
    created.mode = WriteMode::insert;
    map_columns(created, {"id", "account"});
    TargetConfig paid = created;
    paid.match = "order.paid";
    paid.table_schema = "billing";
    paid.table_name = "payments";
    paid.mode = WriteMode::upsert;
    paid.key = {"id"};
    TargetConfig audit = created;
    audit.match = "#";
    audit.table_name = "audit";
    audit.mode = WriteMode::ignore;
    audit.key = {"id"};
    p.routes = {created, paid, audit};
    auto targets = p.targets();
    REQUIRE(targets.size() == 3);
    std::vector<WritePlan> plans;
    for (std::size_t i = 0; i < targets.size(); ++i)
        plans.push_back(plan_target(p, *targets[i], i));
    CHECK(plans[0].copy_target == R"("public"."orders" ("id", "account"))");
    CHECK(plans[0].then.empty());
    CHECK(plans[1].staging == "rmq2pg_batch_1");
    CHECK(has(plans[1].then.back(), R"(INSERT INTO "billing"."payments" AS t)"));
    CHECK(has(plans[1].then.back(), "DO UPDATE SET \"account\" = EXCLUDED.\"account\""));
    CHECK(plans[2].staging == "rmq2pg_batch_2");
    CHECK(has(plans[2].then.back(), R"(INSERT INTO "public"."audit" AS t)"));
    CHECK(has(plans[2].then.back(), "DO NOTHING"));
}

TEST_CASE("odd identifiers and names are quoted wherever they appear", "[write_plan]") {
    CHECK(rmq2pg::quote_ident("plain") == "\"plain\"");
    CHECK(rmq2pg::quote_ident("we\"ird") == "\"we\"\"ird\"");
    CHECK(rmq2pg::quote_ident("Mixed Case; DROP") == "\"Mixed Case; DROP\"");
    CHECK(rmq2pg::quote_literal("o'brien") == "'o''brien'");
    CHECK(rmq2pg::column_list({"a", "b\"c"}) == "\"a\", \"b\"\"c\"");
    CHECK(rmq2pg::prefixed("l", {"a", "b"}) == "l.\"a\", l.\"b\"");

    PipelineConfig p;
    p.name = "it's";
    p.queue = "q";
    p.table_schema = "My Schema";
    p.table_name = "ta\"ble";
    p.mode = WriteMode::upsert;
    p.key = {"k\"ey"};
    p.version = "ver sion";
    p.dedupe = "message_id";
    p.delete_when = DeleteRule{"/op", "delete"};
    map_columns(p, {"k\"ey", "ver sion", "select"});
    WritePlan plan = plan_target(p, p, 0);
    CHECK(
        has(plan.copy_target, R"(("k""ey", "ver sion", "select", "rmq2pg_dedupe", "rmq2pg_op"))"));
    std::string all;
    for (const auto& s : plan.create_staging)
        all += s + ";";
    for (const auto& s : plan.then)
        all += s + ";";
    CHECK(has(all, R"(FROM "My Schema"."ta""ble")"));
    CHECK(has(all, R"(INSERT INTO "My Schema"."ta""ble" AS t ("k""ey", "ver sion", "select"))"));
    CHECK(has(all, R"(ON CONFLICT ("k""ey") DO UPDATE SET "ver sion" = EXCLUDED."ver sion", )"
                   R"("select" = EXCLUDED."select")"));
    CHECK(has(all, "SELECT 'it''s', rmq2pg_dedupe"));
    CHECK(has(all, "hashtext('rmq2pg:My Schema.ta\"ble')"));
    CHECK(has(all, "tb.table_name = 'My Schema.ta\"ble'"));
    // No unquoted occurrence of an odd name.
    CHECK_FALSE(has(all, " My Schema"));
    CHECK_FALSE(has(all, "(k\"ey"));
}

TEST_CASE("a change-event truncate keeps rows of later changes", "[write_plan]") {
    WritePlan plan;
    plan.table = "\"public\".\"t\"";
    CHECK(truncate_statement(plan, "42") == "TRUNCATE \"public\".\"t\"");
    plan.version_column = "_rmq2pg_version";
    CHECK(truncate_statement(plan, "") == "TRUNCATE \"public\".\"t\"");
    CHECK(truncate_statement(plan, "42") ==
          "DO $rmq2pg$ BEGIN IF EXISTS (SELECT 1 FROM \"public\".\"t\" WHERE "
          "\"_rmq2pg_version\" > 42) THEN DELETE FROM \"public\".\"t\" WHERE "
          "\"_rmq2pg_version\" IS NULL OR \"_rmq2pg_version\" <= 42; ELSE TRUNCATE "
          "\"public\".\"t\"; END IF; END $rmq2pg$");
}
