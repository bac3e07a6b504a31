// The SQL of aggregates (aggregate.h): the applied-parents table, the deletes of children that
// replace or a parent's delete needs, and each child table's staging and insert. Pure text, so
// it is unit-tested without a server; write_plan.cpp and pg_writer.cpp use it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "aggregate.h"
#include "write_plan.h"

namespace rmq2pg {

// What the planner needs to know about a pipeline's tables beyond the config: for each table,
// whether the foreign key to its parent deletes it ON DELETE CASCADE (read from the catalog).
struct AggregateShape {
    std::vector<TableTarget> tables;
    std::vector<bool> cascades;  // per table; false for routes
};

constexpr const char* kStagingMessage = "rmq2pg_msg";

// The temporary table of the messages whose parent row route `root` applied.
std::string applied_table(std::size_t root);

// "child.c = parent.p AND ..." for the child's $parent.COLUMN mappings.
std::string link_condition(const TargetConfig& child, const std::string& child_alias,
                           const std::string& parent_alias);

// The statements that delete, deepest first, every row below the rows of table `table` that
// `using_clause` + `where` select (aliased `alias`), except where a foreign key with ON DELETE
// CASCADE lets PostgreSQL do it.
std::vector<std::string> delete_descendants(const AggregateShape& shape, std::size_t table,
                                            const std::string& alias,
                                            const std::string& using_clause,
                                            const std::string& where);

// The plan of child table `index`: staging (its columns and rmq2pg_msg), the deletes of
// `replace`, and the insert of the rows of applied messages only.
WritePlan plan_child(const PipelineConfig& pipeline, const AggregateShape& shape,
                     std::size_t index);

// "public.order_lines (ON DELETE CASCADE), ..." for the startup line.
std::string describe_children(const AggregateShape& shape);

}  // namespace rmq2pg
