// What a worker writes its batches through: one transaction per write, COMMIT last. PgWriter is
// the implementation; unit tests of the worker hand a fake. Errors are typed by what the caller
// does next.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "table_schema.h"

namespace rmq2pg {

class WriteError : public std::runtime_error {
  public:
    enum class Kind {
        connection,       // the connection is gone: reconnect, then retry the batch
        transient,        // serialization failure, deadlock, disk full...: retry the batch
        outcome_unknown,  // COMMIT sent, no answer: retry (insert mode may duplicate)
        bad_data,         // a row is unacceptable: isolate it, commit the rest
        schema,           // table/column/permission problem: no row can succeed until fixed
    };
    WriteError(Kind kind, const std::string& what, std::string sqlstate = {},
               std::optional<std::size_t> failed_row = std::nullopt, std::size_t failed_target = 0)
        : std::runtime_error(what),
          kind_(kind),
          sqlstate_(std::move(sqlstate)),
          failed_row_(failed_row),
          failed_target_(failed_target) {}
    Kind kind() const { return kind_; }
    const std::string& sqlstate() const { return sqlstate_; }
    // The 0-based row of the COPY data PostgreSQL blamed, when it said so.
    std::optional<std::size_t> failed_row() const { return failed_row_; }
    // Which target's statements failed (an index into PipelineConfig::targets()).
    std::size_t failed_target() const { return failed_target_; }

  private:
    Kind kind_;
    std::string sqlstate_;
    std::optional<std::size_t> failed_row_;
    std::size_t failed_target_;
};

const char* to_string(WriteError::Kind kind);

// The rows of one target in a write: COPY text, rows separated by '\n', no trailing newline.
struct TargetRows {
    std::size_t target = 0;
    const std::string* rows = nullptr;
    std::size_t count = 0;
};

class BatchWriter {
  public:
    virtual ~BatchWriter() = default;
    // Connects and reads every target table from the catalog. Throws WriteError.
    virtual void connect() = 0;
    // The catalog's view of target `target` (same order as PipelineConfig::targets()).
    virtual const TableSchema& table(std::size_t target) const = 0;
    // Writes every part in one transaction whose last statement is COMMIT; returns only after
    // COMMIT succeeded. Throws WriteError.
    virtual void write(const std::vector<TargetRows>& parts) = 0;
    // Deletes inbox entries and tombstones past their retention. Its own transaction.
    virtual void prune() = 0;
    // Thread-safe: makes a connect() or write() blocked on the owner's thread fail at once with
    // WriteError (connection, or outcome_unknown if its COMMIT was in flight) whose text starts
    // with `reason`. The writer is unusable afterwards.
    virtual void interrupt(const std::string& reason) = 0;
};

}  // namespace rmq2pg
