// One PostgreSQL connection writing one pipeline's batches, owned by one worker thread.
// The only file that includes libpqxx. Errors are classified by what the caller does next.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

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
               std::optional<std::size_t> failed_row = std::nullopt)
        : std::runtime_error(what),
          kind_(kind),
          sqlstate_(std::move(sqlstate)),
          failed_row_(failed_row) {}
    Kind kind() const { return kind_; }
    const std::string& sqlstate() const { return sqlstate_; }
    // The 0-based row of the COPY data PostgreSQL blamed, when it said so.
    std::optional<std::size_t> failed_row() const { return failed_row_; }

  private:
    Kind kind_;
    std::string sqlstate_;
    std::optional<std::size_t> failed_row_;
};

const char* to_string(WriteError::Kind kind);

class PgWriter {
  public:
    // Connects, reads the target table from the catalog, checks the mapping against it and
    // prepares the statements. Throws WriteError (connection or schema).
    PgWriter(const std::string& url, const PipelineConfig& pipeline,
             const std::string& application_name);
    ~PgWriter();
    PgWriter(const PgWriter&) = delete;
    PgWriter& operator=(const PgWriter&) = delete;

    const TableSchema& table() const;

    // Writes `rows` rows of COPY text (rows separated by '\n', no trailing newline) in one
    // transaction whose last statement is COMMIT. Returns only after COMMIT succeeded.
    void write(const std::string& copy_rows, std::size_t rows);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Reads the table and checks the pipeline's mapping against it (columns exist, key columns
// carry a unique index for ignore/upsert); used by --check-config. Throws WriteError.
TableSchema check_pipeline_against_database(const std::string& url, const PipelineConfig& pipeline);

}  // namespace rmq2pg
