// Aggregates: one message → a parent row and the rows of its children (and of theirs) in other
// tables, committed together. This header numbers every table a pipeline writes; the mapping is
// aggregate_mapper.cpp's, the SQL aggregate_plan.cpp's.
//
// Design. Every table a pipeline writes gets one index: its routes (or its own table) first,
// 0..R-1 as before, then each route's children depth first. A batch keeps one COPY buffer per
// table index and, per message, the span of rows it put in each (Batch::Message::spans), so a
// part of the batch is still "these messages": a retry or a split sends each message's parent
// row and all its children together or not at all, and a row PostgreSQL blames in any table
// points back to the one message that made it (Batch::split). Each row of a table that has or
// is a child ends with the message's index in the batch (the staging column rmq2pg_msg). In the
// transaction the parent is written first and the messages whose parent row was applied (not
// refused by its version guard or ignore mode, not deduplicated) are collected into
// rmq2pg_applied_N; children are then written only for those messages, and `replace` deletes
// the existing children of exactly those parents before. A child refused by PostgreSQL fails the
// whole transaction, the part is split like any other, and the message alone is poison.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "config.h"

namespace rmq2pg {

struct TableTarget {
    const TargetConfig* config = nullptr;
    std::optional<std::size_t> parent;  // index of the parent table; none for a route
    std::size_t root = 0;               // index of the route this table belongs to
    int depth = 0;                      // 0 route, 1 child, 2 child of a child
};

// Every table of `pipeline`: routes first (index = PipelineConfig::targets() index), then each
// route's descendants depth first (a parent before its children).
std::vector<TableTarget> table_targets(const PipelineConfig& pipeline);

// The tables below `table` (children, then theirs), depth first.
std::vector<std::size_t> descendants(const std::vector<TableTarget>& tables, std::size_t table);

// Whether rows of this table carry the message index column (it has or is a child).
inline bool carries_message_index(const TableTarget& table) {
    return table.parent.has_value() || !table.config->children.empty();
}

}  // namespace rmq2pg
