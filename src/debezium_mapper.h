// format: debezium — a change event → one COPY row of its target: the row image's fields by
// column (logical types converted with the schema wrapper), the key from the image or the
// message key, the version column from the change's position, and the delete marker.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "config.h"
#include "delivery.h"
#include "table_schema.h"

namespace rmq2pg {

class DebeziumMapper {
  public:
    // `target` as resolve_target made it (its columns exist in `table`).
    DebeziumMapper(const TargetConfig& target, const TableSchema& table,
                   const PipelineConfig& pipeline);
    ~DebeziumMapper();
    DebeziumMapper(DebeziumMapper&&) noexcept;
    DebeziumMapper& operator=(DebeziumMapper&&) noexcept;

    enum class Result { row, skip, poison };
    // row: appended to `out`; skip: a tombstone or an ignored truncate, nothing appended,
    // `reason` says which; poison: `out` untouched, `reason` says why.
    Result append_row(const Delivery& delivery, std::string& out, std::string& reason);

    // Fields of row images no column took (columns by name), since the last call.
    std::uint64_t take_unmapped();
    const std::string& first_unmapped() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
