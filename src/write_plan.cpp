// The SQL of each write mode. Design: insert mode COPYs the rows straight into the table; every
// other mode COPYs into a temporary staging table (the target's column types, none of its
// constraints, plus a delivery sequence, the dedupe id and the delete marker) and then runs
// plain statements over it: dedupe against rmq2pg_state.inbox, deletes and tombstones, and one
// INSERT ... SELECT ... ON CONFLICT with DISTINCT ON the key, so several changes to one key in a
// batch never hit the same row twice.
#include "write_plan.h"

#include <algorithm>

#include "aggregate_plan.h"

namespace rmq2pg {

namespace {

// Delivery order within a batch. The staging table is created in the batch's transaction and
// filled by one COPY, which then only appends (PostgreSQL skips the free space map for a table
// created in the same transaction), so the physical row address is the order the rows were
// sent in. A bigserial column would say the same, at the price of creating a sequence with
// every batch (measured: it tripled the cost of creating the staging table).
constexpr const char* kStagingSeq = "ctid";
constexpr const char* kStagingDedupe = "rmq2pg_dedupe";
constexpr const char* kStagingOp = "rmq2pg_op";
// Columns by name: which defaulted columns a row's message lacked (column_defaults.h).
constexpr const char* kStagingAbsent = "rmq2pg_absent";

}  // namespace

std::string quote_ident(const std::string& name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::string quote_literal(const std::string& text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'')
            out += '\'';
        out += c;
    }
    return out + "'";
}

std::string column_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + quote_ident(n);
    return out;
}

std::string prefixed(const std::string& alias, const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + alias + "." + quote_ident(n);
    return out;
}

std::string truncate_statement(const WritePlan& plan, const std::string& version) {
    // Why not always TRUNCATE: a truncate redelivered after later changes committed (its ack
    // lost, another worker faster) would erase their rows. A row with a newer position than
    // the truncate's survives; only when there is none (the usual case) does the cheap
    // TRUNCATE run. A plain DO block: no function is created, nothing outlives the statement
    // (PgBouncer's transaction pooling is fine with it).
    if (plan.version_column.empty() || version.empty())
        return "TRUNCATE " + plan.table;
    const std::string v = quote_ident(plan.version_column);
    return "DO $rmq2pg$ BEGIN IF EXISTS (SELECT 1 FROM " + plan.table + " WHERE " + v + " > " +
           version + ") THEN DELETE FROM " + plan.table + " WHERE " + v + " IS NULL OR " + v +
           " <= " + version + "; ELSE TRUNCATE " + plan.table + "; END IF; END $rmq2pg$";
}

WritePlan plan_target(const PipelineConfig& pipeline, const TargetConfig& target, std::size_t index,
                      const AggregateShape* shape) {
    WritePlan plan;
    std::vector<std::string> columns;
    for (const auto& c : target.columns)
        columns.push_back(c.column);
    std::string qualified = quote_ident(target.table_schema) + "." + quote_ident(target.table_name);
    bool dedupe = !pipeline.dedupe.empty();
    bool deletes = target.delete_when.has_value();
    bool guarded = !target.version.empty();
    plan.table = qualified;
    plan.version_column = target.version;
    // A parent of children: its rows carry their message's index, and the messages it applies
    // are collected for the children's statements (aggregate.h).
    const bool aggregate = shape != nullptr && !target.children.empty();
    const std::string applied = aggregate ? applied_table(index) : "";
    // A row's value of each column, from staging row `l`: a column whose field was absent takes
    // its DEFAULT (the expression itself, evaluated per row as DEFAULT is).
    bool defaults = false;
    std::string values;
    std::size_t slot = 0;
    for (const auto& c : target.columns) {
        std::string value = "l." + quote_ident(c.column);
        if (!c.column_default.empty()) {
            defaults = true;
            value = "CASE WHEN substr(l." + std::string(kStagingAbsent) + ", " +
                    std::to_string(++slot) + ", 1) = '1' THEN " + c.column_default + " ELSE " +
                    value + " END";
        }
        values += (values.empty() ? "" : ", ") + value;
    }
    if (target.mode == WriteMode::insert && !dedupe && !aggregate && !defaults) {
        plan.copy_target = qualified + " (" + column_list(columns) + ")";
        return plan;
    }
    // Not the rmq2pg_staging_N of versions that kept their staging tables for the session:
    // through a transaction pool, such a version leaves them on server connections this one
    // may get (during a rolling upgrade), and the CREATE would fail with 42P07.
    plan.staging = "rmq2pg_batch_" + std::to_string(index);
    std::vector<std::string> copied = columns;
    if (dedupe)
        copied.push_back(kStagingDedupe);
    if (deletes)
        copied.push_back(kStagingOp);
    if (defaults)
        copied.push_back(kStagingAbsent);
    if (aggregate)
        copied.push_back(kStagingMessage);
    plan.copy_target = plan.staging + " (" + column_list(copied) + ")";
    const std::string& stage = plan.staging;
    // Same column types as the target, none of its constraints: conversion errors surface in
    // COPY with a line number; constraint errors in the statements after. Created in each
    // batch's transaction and dropped at its end: nothing is left on the server connection,
    // which a pooler may hand to another client for the next transaction.
    plan.create_staging.push_back(
        "CREATE TEMP TABLE " + stage + " ON COMMIT DROP AS SELECT " + column_list(columns) +
        ", NULL::text AS " + kStagingDedupe + ", NULL::text AS " + kStagingOp +
        (defaults ? std::string(", NULL::text AS ") + kStagingAbsent : std::string()) +
        (aggregate ? std::string(", NULL::integer AS ") + kStagingMessage : std::string()) +
        " FROM " + qualified + " WITH NO DATA");
    if (aggregate)
        plan.create_staging.push_back("CREATE TEMP TABLE " + applied +
                                      " (msg integer) ON COMMIT DROP");

    if (dedupe) {
        // In-batch duplicates keep their first delivery; then ids already in the inbox (an
        // earlier batch, another worker, a redelivery) are dropped, in the same transaction.
        plan.then.push_back("DELETE FROM " + stage + " a USING " + stage + " b WHERE a." +
                            kStagingDedupe + " = b." + kStagingDedupe + " AND a." + kStagingSeq +
                            " > b." + kStagingSeq);
        plan.then.push_back(
            "WITH fresh AS (INSERT INTO rmq2pg_state.inbox (pipeline, message_id) "
            "SELECT " +
            quote_literal(pipeline.name) + ", " + kStagingDedupe + " FROM " + stage +
            " ON CONFLICT DO NOTHING RETURNING message_id) "
            "DELETE FROM " +
            stage +
            " s WHERE NOT EXISTS (SELECT 1 FROM fresh f "
            "WHERE f.message_id = s." +
            kStagingDedupe + ")");
    }
    if (target.mode == WriteMode::insert) {
        if (aggregate)
            plan.then.push_back("INSERT INTO " + applied + " SELECT " + kStagingMessage + " FROM " +
                                stage);
        plan.then.push_back("INSERT INTO " + qualified + " (" + column_list(columns) + ") SELECT " +
                            (defaults ? values + " FROM " + stage + " l ORDER BY l."
                                      : column_list(columns) + " FROM " + stage + " ORDER BY ") +
                            kStagingSeq);
        return plan;
    }
    std::string key = column_list(target.key);
    // One change per key: the highest version, else the last delivered (upsert) or the first
    // delivered (ignore). ON CONFLICT must never meet the same row twice in one statement.
    std::string order = key + ", " +
                        (guarded ? quote_ident(target.version) + " DESC NULLS LAST, " : "") +
                        kStagingSeq + (target.mode == WriteMode::upsert ? " DESC" : "");
    std::string latest =
        "(SELECT DISTINCT ON (" + key + ") * FROM " + stage + " ORDER BY " + order + ")";
    std::string key_json = "jsonb_build_array(" + prefixed("l", target.key) + ")";
    std::string table_literal = quote_literal(target.qualified_table());
    std::string not_deleted;
    if (deletes || guarded) {
        // Deletes, tombstones and guarded upserts of one table from several workers or instances
        // would deadlock on each other's rows; one transaction-scoped lock per table orders them.
        plan.then.push_back("SELECT pg_advisory_xact_lock(hashtext(" +
                            quote_literal("rmq2pg:" + target.qualified_table()) + "))");
    }
    if (deletes) {
        std::string match;
        for (const auto& k : target.key)
            match += " AND t." + quote_ident(k) + " = l." + quote_ident(k);
        std::string guard = guarded ? " AND t." + quote_ident(target.version) + " <= l." +
                                          quote_ident(target.version)
                                    : "";
        if (aggregate) {
            // The children of the rows about to be deleted go first (or by their foreign key's
            // ON DELETE CASCADE), so no foreign key refuses the delete and no child is orphaned.
            std::string rows_match, rows_guard;
            for (const auto& k : target.key)
                rows_match += " AND a0." + quote_ident(k) + " = l." + quote_ident(k);
            if (guarded)
                rows_guard = " AND a0." + quote_ident(target.version) + " <= l." +
                             quote_ident(target.version);
            for (auto& statement : delete_descendants(
                     *shape, index, "a0", qualified + " a0, " + latest + " l",
                     std::string("l.") + kStagingOp + " = 'd'" + rows_match + rows_guard))
                plan.then.push_back(std::move(statement));
        }
        plan.then.push_back("DELETE FROM " + qualified + " t USING " + latest + " l WHERE l." +
                            kStagingOp + " = 'd'" + match + guard);
        if (guarded) {
            // The tombstone keeps the delete's version so that an older update arriving later
            // is refused below.
            plan.then.push_back(
                "INSERT INTO rmq2pg_state.tombstones AS tb (table_name, key, version) SELECT " +
                table_literal + ", " + key_json + ", to_jsonb(l." + quote_ident(target.version) +
                ") FROM " + latest + " l WHERE l." + kStagingOp + " = 'd' AND l." +
                quote_ident(target.version) +
                " IS NOT NULL ON CONFLICT (table_name, key) DO UPDATE SET version = "
                "EXCLUDED.version, deleted_at = now() WHERE tb.version < EXCLUDED.version");
            not_deleted =
                " AND NOT EXISTS (SELECT 1 FROM rmq2pg_state.tombstones tb WHERE "
                "tb.table_name = " +
                table_literal + " AND tb.key = " + key_json + " AND tb.version >= to_jsonb(l." +
                quote_ident(target.version) + "))";
        }
    }
    std::string sql =
        "INSERT INTO " + qualified + " AS t (" + column_list(columns) + ") SELECT " + values +
        " FROM " + latest + " l WHERE true" +
        (deletes ? std::string(" AND l.") + kStagingOp + " IS DISTINCT FROM 'd'" : "") +
        not_deleted + " ON CONFLICT (" + key + ") ";
    std::vector<std::string> non_key;
    for (const auto& c : columns)
        if (std::find(target.key.begin(), target.key.end(), c) == target.key.end())
            non_key.push_back(c);
    if (target.mode == WriteMode::ignore || non_key.empty()) {
        sql += "DO NOTHING";
    } else {
        sql += "DO UPDATE SET ";
        for (std::size_t i = 0; i < non_key.size(); ++i)
            sql += (i ? ", " : "") + quote_ident(non_key[i]) + " = EXCLUDED." +
                   quote_ident(non_key[i]);
        if (guarded)
            sql += " WHERE t." + quote_ident(target.version) + " IS NULL OR t." +
                   quote_ident(target.version) + " < EXCLUDED." + quote_ident(target.version);
    }
    if (aggregate) {
        // RETURNING names the rows written: not those the version guard or ignore refused. Their
        // messages' children are written; an older aggregate's replace nothing.
        std::string on;
        for (const auto& k : target.key)
            on += (on.empty() ? "" : " AND ") + std::string("l.") + quote_ident(k) + " = w." +
                  quote_ident(k);
        sql = "WITH w AS (" + sql + " RETURNING " + prefixed("t", target.key) + ") INSERT INTO " +
              applied + " SELECT l." + kStagingMessage + " FROM " + latest + " l JOIN w ON " + on;
    }
    plan.then.push_back(sql);
    return plan;
}

}  // namespace rmq2pg
