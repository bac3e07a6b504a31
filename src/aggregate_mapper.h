// A message → its rows in every table of its route: the parent's row (row_mapper.h) and, for each
// child, one row per element of the child's array, recursively. Pure; see aggregate.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate.h"
#include "delivery.h"
#include "row_mapper.h"
#include "table_schema.h"

namespace rmq2pg {

class AggregateMapper {
  public:
    // The mapper of route `table` and its descendants; `schemas[i]` is table i's catalog view.
    // The route's columns are resolved against its table (columns by name, the format).
    // Throws std::invalid_argument as RowMapper does.
    AggregateMapper(const PipelineConfig& pipeline, const std::vector<TableTarget>& tables,
                    std::size_t table, const std::vector<const TableSchema*>& schemas);
    ~AggregateMapper();
    AggregateMapper(AggregateMapper&&) noexcept;
    AggregateMapper& operator=(AggregateMapper&&) noexcept;

    // Appends the message's rows to rows[t] for every table t it writes ('\n' between rows,
    // counted in counts[t]), each row of a table with children or a parent ending with
    // `message` (the staging column rmq2pg_msg). On failure returns the reason (a child's names
    // its table and element) and the caller restores the buffers.
    std::optional<std::string> append(const Delivery& delivery, std::string_view body,
                                      std::size_t message, std::vector<std::string>& rows,
                                      std::vector<std::size_t>& counts,
                                      const RowContext* context = nullptr);

    // RowMapper's of the route's row: the last append wrote no row and is no failure (a
    // change-event tombstone); body fields no column took (columns by name).
    bool skipped() const;
    const std::string& skip_reason() const;
    // RowMapper::last_version of the route's row (format: debezium).
    std::string last_version() const;
    std::uint64_t take_unmapped();
    std::string first_unmapped() const;

  private:
    // A child's mapper (`parent` is its parent's config, as resolved).
    AggregateMapper(const std::vector<TableTarget>& tables, std::size_t table,
                    const std::vector<const TableSchema*>& schemas, const TargetConfig& parent);
    void add_children(const std::vector<TableTarget>& tables,
                      const std::vector<const TableSchema*>& schemas, const TargetConfig& self);

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
