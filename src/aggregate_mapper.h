// A message → its rows in every table of its route: the parent's row (row_mapper.h) and, for each
// child, one row per element of the child's array, recursively. Pure; see aggregate.h.
#pragma once

#include <cstddef>
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
    // The mapper of table `table` and its descendants; `schema(i)` is table i's catalog view.
    // Throws std::invalid_argument as RowMapper does.
    AggregateMapper(const std::vector<TableTarget>& tables, std::size_t table,
                    const std::vector<const TableSchema*>& schemas, const std::string& dedupe);
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

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
