// Delivery → one row of COPY text, following the pipeline's column mapping and the target
// column types. Pure (no I/O): a message that cannot be mapped is an expected outcome returned
// as a reason, not an exception.
#pragma once

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
    ~RowMapper();
    RowMapper(RowMapper&&) noexcept;
    RowMapper& operator=(RowMapper&&) noexcept;

    // Appends the delivery's row (tab-separated COPY text, no newline) to `out`. On failure
    // `out` is left as it was and the reason is returned.
    std::optional<std::string> append_row(const Delivery& delivery, std::string& out);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
