// One PostgreSQL connection writing one pipeline's batches, owned by one worker thread.
// The only file that includes libpqxx. Errors are classified by what the caller does next.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
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

class PgWriter {
  public:
    // Keeps the settings; connect() opens the connection.
    PgWriter(const std::string& url, const PipelineConfig& pipeline,
             const std::string& application_name);
    ~PgWriter();
    PgWriter(const PgWriter&) = delete;
    PgWriter& operator=(const PgWriter&) = delete;

    // Connects, reads every target table from the catalog, checks the mapping against it and
    // prepares the statements. Throws WriteError (connection or schema).
    void connect();

    // Thread-safe, for the worker's write guard: makes a connect() or write() that is blocked on
    // the owner's thread (a hung server, a black-holed network) fail at once with
    // WriteError(connection, or outcome_unknown when its COMMIT was in flight) whose text starts
    // with `reason`. It shuts the socket down; the writer is unusable afterwards.
    void interrupt(const std::string& reason);

    // The catalog's view of target `target` (same order as PipelineConfig::targets()).
    const TableSchema& table(std::size_t target = 0) const;

    // Writes every part in one transaction whose last statement is COMMIT. Returns only after
    // COMMIT succeeded.
    void write(const std::vector<TargetRows>& parts);
    // One target's rows alone (the single-table case).
    void write(const std::string& copy_rows, std::size_t rows) {
        write({TargetRows{0, &copy_rows, rows}});
    }

    // Deletes inbox entries and tombstones older than their retention. Its own transaction.
    void prune();

  private:
    void connect_now();
    void write_now(const std::vector<TargetRows>& parts);
    void throw_if_interrupted(const WriteError& error) const;

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Creates rmq2pg's own tables (sql/002_rmq2pg_state.sql); idempotent. Throws WriteError.
void migrate(const std::string& url);

// Reads every target table and checks the pipeline's mapping against it (columns exist, key
// columns carry a unique index for ignore/upsert, rmq2pg's tables exist when needed); used by
// --check-config. Returns the first target's table. Throws WriteError.
TableSchema check_pipeline_against_database(const std::string& url, const PipelineConfig& pipeline);

}  // namespace rmq2pg
