// Aggregates (src/aggregate*.cpp): children in the config, one message mapped to its rows in
// every table, the SQL of replace and deletes, and a batch that keeps a message's rows together.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "aggregate.h"
#include "aggregate_mapper.h"
#include "aggregate_plan.h"
#include "batch.h"
#include "config.h"

using namespace rmq2pg;

namespace {

const char* const kHead =
    "amqp:\n"
    "  urls: [\"amqp://h/\"]\n"
    "postgres:\n"
    "  url: postgresql://h/db\n";

const char* const kOrders = R"(pipelines:
  - name: orders
    queue: orders
    table: public.orders
    mode: upsert
    key: [id]
    version: version
    delete_when: { field: /op, equals: delete }
    columns: { id: /id, customer: /customer, version: /v }
    children:
      - table: public.order_lines
        from: /lines
        mode: upsert
        key: [order_id, line_no]
        columns:
          order_id: $parent.id
          line_no: $index
          sku: /sku
          qty: /qty
        replace: true
        children:
          - table: serials
            from: /serials
            columns: { order_id: $parent.order_id, line_no: $parent.line_no, serial: "" }
            replace: true
)";

std::vector<std::string> problems_of(const std::string& yaml) {
    try {
        load_config_text(std::string(kHead) + yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.problems();
    }
    return {};
}

std::string joined(const std::vector<std::string>& problems) {
    std::string out;
    for (const auto& p : problems)
        out += p + "\n";
    return out;
}

TableSchema schema_of(const TargetConfig& t) {
    TableSchema s;
    s.schema = t.table_schema;
    s.name = t.table_name;
    for (const auto& c : t.columns)
        s.columns.push_back({c.column, "text", TypeCategory::text, false});
    return s;
}

struct Mapped {
    std::vector<std::string> rows;
    std::vector<std::size_t> counts;
    std::string error;
};

Mapped map_one(const PipelineConfig& p, const std::string& body, std::size_t message = 7) {
    auto tables = table_targets(p);
    std::vector<TableSchema> schemas;
    for (const auto& t : tables)
        schemas.push_back(schema_of(*t.config));
    std::vector<const TableSchema*> pointers;
    for (const auto& s : schemas)
        pointers.push_back(&s);
    AggregateMapper mapper(p, tables, 0, pointers);
    Mapped m;
    m.rows.resize(tables.size());
    m.counts.resize(tables.size());
    Delivery d;
    d.body = body;
    if (auto error = mapper.append(d, body, message, m.rows, m.counts))
        m.error = *error;
    return m;
}

}  // namespace

TEST_CASE("children are read with their columns, $index and $parent, two levels deep",
          "[aggregate]") {
    Config c = load_config_text(std::string(kHead) + kOrders, "test.yaml");
    const PipelineConfig& p = c.pipelines.at(0);
    REQUIRE(p.children.size() == 1);
    const TargetConfig& lines = p.children[0];
    CHECK(lines.from == "/lines");
    CHECK(lines.replace);
    CHECK(lines.columns[0].source.kind == ColumnSource::Kind::parent_column);
    CHECK(lines.columns[0].source.argument == "id");
    CHECK(lines.columns[1].source.kind == ColumnSource::Kind::element_index);
    REQUIRE(lines.children.size() == 1);
    auto tables = table_targets(p);
    REQUIRE(tables.size() == 3);
    CHECK(tables[1].parent == std::size_t{0});
    CHECK(tables[2].parent == std::size_t{1});
    CHECK(tables[2].root == 0);
    CHECK(descendants(tables, 0) == std::vector<std::size_t>{1, 2});
}

TEST_CASE("a child config that cannot work is refused with file, line and key", "[aggregate]") {
    std::string p = joined(problems_of(R"(pipelines:
  - name: o
    queue: o
    table: orders
    mode: upsert
    key: [id]
    columns: { id: /id }
    children:
      - table: lines
        columns: { order_id: $parent.nope, n: $index }
        replace: true
      - table: notes
        from: /notes
        columns: { note: /text }
        replace: true
        version: v
)"));
    CHECK(p.find("test.yaml:13: pipelines[0].children[0].from: is required") != std::string::npos);
    CHECK(p.find("children[0].columns.order_id: '$parent.nope': the parent table public.orders "
                 "maps no column 'nope'") != std::string::npos);
    CHECK(p.find("children[1].replace: needs a column mapped from $parent.COLUMN") !=
          std::string::npos);
    CHECK(p.find("test.yaml:20: pipelines[0].children[1].version: unknown key") !=
          std::string::npos);
    SECTION("$index and $parent are for children only") {
        std::string top = joined(
            problems_of("pipelines:\n  - {name: o, queue: o, table: t, columns: {a: $index}}\n"));
        CHECK(top.find("unknown source '$index'") != std::string::npos);
    }
    SECTION("three levels are one too many") {
        std::string deep = joined(problems_of(R"(pipelines:
  - name: o
    queue: o
    table: a
    columns: { id: /id }
    children:
      - table: b
        from: /b
        columns: { id: $parent.id }
        children:
          - table: c
            from: /c
            columns: { id: $parent.id }
            children:
              - { table: d, from: /d, columns: { id: $parent.id } }
)"));
        CHECK(deep.find("children[0].children[0].children: children may nest one level only") !=
              std::string::npos);
    }
}

TEST_CASE("one order becomes its row, one row per line and one per serial", "[aggregate]") {
    Config c = load_config_text(std::string(kHead) + kOrders, "test.yaml");
    const PipelineConfig& p = c.pipelines.at(0);
    Mapped m = map_one(p, R"({"id": 5, "customer": "ann", "v": 2, "lines": [
        {"sku": "A", "qty": 1, "serials": ["s1", "s2"]},
        {"sku": "B\tX", "qty": 2}]})");
    REQUIRE(m.error.empty());
    CHECK(m.rows[0] == "5\tann\t2\tu\t7");  // ... the operation, then the message index
    CHECK(m.counts[0] == 1);
    CHECK(m.rows[1] == "5\t0\tA\t1\t7\n5\t1\tB\\tX\t2\t7");
    CHECK(m.counts[1] == 2);
    CHECK(m.rows[2] == "5\t0\ts1\t7\n5\t0\ts2\t7");
    SECTION("a missing, null or empty array writes no child") {
        for (const char* body :
             {R"({"id": 6})", R"({"id": 6, "lines": null})", R"({"id": 6, "lines": []})"}) {
            Mapped none = map_one(p, body);
            CHECK(none.error.empty());
            CHECK(none.counts[0] == 1);
            CHECK(none.counts[1] == 0);
        }
    }
    SECTION("an array that is something else is poison naming the child table") {
        Mapped bad = map_one(p, R"({"id": 6, "lines": {"sku": "A"}})");
        CHECK(bad.error == "child public.order_lines from /lines: an object, not an array");
    }
}

TEST_CASE("replace deletes the children of applied parents only, deepest first", "[aggregate]") {
    Config c = load_config_text(std::string(kHead) + kOrders, "test.yaml");
    const PipelineConfig& p = c.pipelines.at(0);
    AggregateShape shape{table_targets(p), {false, false, false}};
    WritePlan parent = plan_target(p, p, 0, &shape);
    std::string all;
    for (const auto& s : parent.then)
        all += s + ";\n";
    // The parent's upsert collects the messages it applied (RETURNING: not those the version
    // guard refused).
    CHECK(all.find("WITH w AS (INSERT INTO \"public\".\"orders\" AS t") != std::string::npos);
    CHECK(all.find("RETURNING t.\"id\") INSERT INTO rmq2pg_applied_0 SELECT l.rmq2pg_msg") !=
          std::string::npos);
    // A deleted order's serials go, then its lines, then the order.
    auto serials = all.find("DELETE FROM \"public\".\"serials\" d");
    auto lines = all.find("DELETE FROM \"public\".\"order_lines\" d");
    auto order = all.find("DELETE FROM \"public\".\"orders\" t");
    CHECK(serials < lines);
    CHECK(lines < order);
    // The children are not covered by the parent's keys: an aggregate keeps the table lock.
    CHECK(parent.then.at(0) == "SELECT pg_advisory_xact_lock(hashtext('rmq2pg:public.orders'))");
    WritePlan child = plan_child(p, shape, 1);
    REQUIRE(child.then.size() == 3);
    CHECK(child.then[0].find("DELETE FROM \"public\".\"serials\" d USING rmq2pg_batch_0 a0, "
                             "\"public\".\"order_lines\" a1 WHERE a0.rmq2pg_msg IN (SELECT msg "
                             "FROM rmq2pg_applied_0)") == 0);
    CHECK(child.then[1].find("DELETE FROM \"public\".\"order_lines\" d USING rmq2pg_batch_0 a0 "
                             "WHERE a0.rmq2pg_msg IN (SELECT msg FROM rmq2pg_applied_0) AND "
                             "d.\"order_id\" = a0.\"id\"") == 0);
    CHECK(child.then[2].find("ON CONFLICT (\"order_id\", \"line_no\") DO UPDATE") !=
          std::string::npos);
    SECTION("ON DELETE CASCADE leaves a deleted parent's children to PostgreSQL") {
        AggregateShape cascading{table_targets(p), {false, true, true}};
        WritePlan with_cascade = plan_target(p, p, 0, &cascading);
        std::string text;
        for (const auto& s : with_cascade.then)
            text += s + ";\n";
        CHECK(text.find("DELETE FROM \"public\".\"order_lines\" d") == std::string::npos);
        CHECK(describe_children(cascading).find("ON DELETE CASCADE") != std::string::npos);
        // replace still deletes: the parent row is updated, not deleted.
        CHECK(plan_child(p, cascading, 1).then[0].find("DELETE FROM \"public\".\"order_lines\"") ==
              0);
    }
}

TEST_CASE("a batch keeps a message's parent and children together when it is split",
          "[aggregate]") {
    Config c = load_config_text(std::string(kHead) + kOrders, "test.yaml");
    PipelineConfig p = c.pipelines.at(0);
    p.delete_when.reset();
    p.version.clear();
    auto tables = table_targets(p);
    std::vector<TableSchema> schemas;
    for (const auto& t : tables)
        schemas.push_back(schema_of(*t.config));
    std::vector<const TableSchema*> pointers;
    for (const auto& s : schemas)
        pointers.push_back(&s);
    std::vector<AggregateMapper> mappers;
    mappers.emplace_back(p, tables, 0, pointers);
    std::vector<std::string> bodies = {
        R"({"id": 1, "lines": [{"sku": "a"}, {"sku": "b"}]})",
        R"({"id": 2, "lines": "oops"})",
        R"({"id": 3, "lines": [{"sku": "c"}, {"sku": "d"}, {"sku": "e"}]})",
        R"({"id": 4})",
    };
    Batch batch;
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        Delivery d;
        d.delivery_tag = i + 1;
        d.body = bodies[i];
        batch.add(std::move(d));
    }
    batch.map(p, mappers, false);
    CHECK(batch.messages()[1].status == Batch::Status::poison);
    CHECK(batch.messages()[1].reason.find("public.order_lines") != std::string::npos);
    Batch::Part pending = batch.pending();
    REQUIRE(pending == Batch::Part{0, 2, 3});
    auto rows = batch.rows_of(pending);
    CHECK(rows[0].count == 3);
    CHECK(rows[1].count == 5);
    CHECK(*rows[1].rows ==
          "1\t0\ta\t\\N\t0\n1\t1\tb\t\\N\t0\n3\t0\tc\t\\N\t2\n3\t1\td\t\\N\t2\n"
          "3\t2\te\t\\N\t2");
    SECTION("line 4 of order_lines (0-based 3) is message 2's: it is tried alone") {
        auto next = batch.split(pending, 3, 1);
        REQUIRE(next.size() == 2);
        CHECK(next[0] == Batch::Part{2});
        CHECK(next[1] == Batch::Part{0, 3});
        auto rest = batch.rows_of(next[1]);
        CHECK(rest[0].count == 2);
        CHECK(*rest[1].rows == "1\t0\ta\t\\N\t0\n1\t1\tb\t\\N\t0");
        CHECK(rest[1].count == 2);
    }
}
