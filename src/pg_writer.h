// One PostgreSQL connection writing one pipeline's batches, owned by one worker thread.
// The only file that includes libpqxx. Errors are classified by what the caller does next.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch_writer.h"
#include "config.h"
#include "table_schema.h"

namespace rmq2pg {

class PgWriter : public BatchWriter {
  public:
    // Keeps the settings; connect() opens the connection.
    PgWriter(const std::string& url, const PipelineConfig& pipeline,
             const std::string& application_name);
    ~PgWriter() override;
    PgWriter(const PgWriter&) = delete;
    PgWriter& operator=(const PgWriter&) = delete;

    // Connects, reads every target table from the catalog, checks the mapping against it and
    // prepares the statements. Throws WriteError (connection or schema).
    void connect() override;

    // Thread-safe, for the worker's write guard: makes a connect() or write() that is blocked on
    // the owner's thread (a hung server, a black-holed network) fail at once with
    // WriteError(connection, or outcome_unknown when its COMMIT was in flight) whose text starts
    // with `reason`. It shuts the socket down; the writer is unusable afterwards.
    void interrupt(const std::string& reason) override;

    // The catalog's view of target `target` (same order as PipelineConfig::targets()).
    const TableSchema& table(std::size_t target = 0) const override;

    // Writes every part in one transaction whose last statement is COMMIT. Returns only after
    // COMMIT succeeded.
    void write(const std::vector<TargetRows>& parts) override;

    // Deletes inbox entries and tombstones older than their retention. Its own transaction.
    void prune() override;

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
