// The SQL that writes one target's batch in each mode (insert, ignore, upsert, version guard,
// deletes and tombstones, dedupe): pure text built from the config, so it is unit-tested without a
// server. pg_writer.cpp runs it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config.h"

namespace rmq2pg {

// The statements of one target's part of a batch transaction, in order:
// create_staging, then COPY copy_target FROM STDIN, then `then`.
struct WritePlan {
    std::string copy_target;                  // COPY target with its column list
    std::string staging;                      // "" when COPY goes straight into the table
    std::vector<std::string> create_staging;  // creates `staging`; empty when there is none
    std::vector<std::string> then;            // statements after the COPY
    std::string table;                        // "schema"."name"
    std::string version_column;               // the version guard's column, "" without
};

// The statement that applies a change-event truncate at source position `version` ("" when it
// has none) to the plan's table, before the rows of the same write.
std::string truncate_statement(const WritePlan& plan, const std::string& version);

struct AggregateShape;  // aggregate_plan.h

// `index` is the target's position in PipelineConfig::targets(): it names the staging table.
// A target with children needs `shape` (its staging rows then carry rmq2pg_msg, the messages it
// applies are collected, and its deletes delete the children first).
WritePlan plan_target(const PipelineConfig& pipeline, const TargetConfig& target, std::size_t index,
                      const AggregateShape* shape = nullptr);

// "name" with embedded quotes doubled: any identifier, whatever its characters.
std::string quote_ident(const std::string& name);
// 'text' with embedded quotes doubled (standard_conforming_strings, on since PostgreSQL 9.1).
std::string quote_literal(const std::string& text);
// "a", "b", "c"
std::string column_list(const std::vector<std::string>& names);
// alias."a", alias."b"
std::string prefixed(const std::string& alias, const std::vector<std::string>& names);
// The conflict clause of an INSERT INTO table AS t: ON CONFLICT (key) DO NOTHING (ignore, or no
// column but the key), else DO UPDATE SET every non-key column, guarded by `version` when given
// (a change applies only over a lower or missing stored version).
std::string on_conflict(const std::vector<std::string>& columns,
                        const std::vector<std::string>& key, WriteMode mode,
                        const std::string& version = "");

}  // namespace rmq2pg
