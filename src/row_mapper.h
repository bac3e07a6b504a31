// Delivery → one row of COPY text, following the pipeline's column mapping and the target
// column types. Pure (no I/O): a message that cannot be mapped is an expected outcome returned
// as a reason, not an exception.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "config.h"
#include "delivery.h"
#include "table_schema.h"

namespace rmq2pg {

class RowMapper {
  public:
    // Throws std::invalid_argument naming the column when a mapped column is not in `table`.
    // `dedupe` is PipelineConfig::dedupe: when set, each row ends with the message's dedupe id;
    // with target.delete_when, each row then ends with its operation ('u' or 'd').
    RowMapper(const TargetConfig& target, const TableSchema& table, const std::string& dedupe = "");
    // `target` as resolve_target made it; the pipeline gives dedupe and the format (a debezium
    // pipeline maps through DebeziumMapper).
    RowMapper(const TargetConfig& target, const TableSchema& table, const PipelineConfig& pipeline);
    ~RowMapper();
    RowMapper(RowMapper&&) noexcept;
    RowMapper& operator=(RowMapper&&) noexcept;

    // Appends the delivery's row (tab-separated COPY text, no newline) to `out`. On failure
    // `out` is left as it was and the reason is returned.
    std::optional<std::string> append_row(const Delivery& delivery, std::string& out);
    // The last append_row added no row and is no failure: a change-event tombstone or an
    // ignored truncate, to acknowledge as it is.
    bool skipped() const;

    // Columns by name: body fields that no column took since the last call, and the first
    // such field's name ever seen (empty when none).
    std::uint64_t take_unmapped();
    std::string first_unmapped() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
