// One PostgreSQL connection writing one pipeline's batches, owned by one worker thread.
// The only file that includes libpqxx. Errors are classified by what the caller does next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "batch_writer.h"
#include "config.h"
#include "table_schema.h"
#include "write_error.h"

namespace rmq2pg {

// How rmq2pg's PostgreSQL connections are opened and bounded (the postgres: keys).
struct PgConnectionSettings {
    std::string url;
    std::int64_t write_timeout_ms = 30000;  // statement_timeout of every batch statement
    std::int64_t connect_timeout_s = 10;    // libpq's connect_timeout
    std::string application_name = "rmq2pg";

    static PgConnectionSettings of(const Config& config, std::string application_name);
};

// The libpq connection string of `settings`: its URL (URI or key=value form) with the deadlines
// and TCP keepalives added where the URL does not set them, and application_name. Throws
// WriteError(schema) when libpq cannot parse the URL.
std::string connection_string(const PgConnectionSettings& settings);

// One PostgreSQL connection as the pool (pg_pool.h) keeps it between the calls it is lent for;
// opaque outside pg_writer.cpp, the one file that includes libpqxx.
struct PgLink;
struct PgLinkDeleter {
    void operator()(PgLink* link) const;
};
using PgLinkPtr = std::unique_ptr<PgLink, PgLinkDeleter>;
// Opens a connection with `settings` (deadlines, keepalives, application_name). Throws
// WriteError (connection, or schema when postgres.url does not parse).
PgLinkPtr open_link(const PgConnectionSettings& settings);

// Thread ownership: everything but interrupt() runs on the owning worker's thread.
// Nothing outlives a transaction on the server (no temporary table, no named prepared statement,
// no session SET or advisory lock), so a pooler in transaction mode (PgBouncer) may hand each
// transaction to another server connection.
class PgWriter : public BatchWriter {
  public:
    // Keeps the settings; connect() opens the connection.
    PgWriter(PgConnectionSettings settings, const PipelineConfig& pipeline);
    ~PgWriter() override;
    PgWriter(const PgWriter&) = delete;
    PgWriter& operator=(const PgWriter&) = delete;

    // Connects, reads every target table from the catalog, checks the mapping against it and
    // plans the statements of each target (write_plan.h). Throws WriteError (connection or schema).
    void connect() override;

    // Thread-safe, for the worker's write guard: makes a connect() or write() that is blocked on
    // the owner's thread (a hung server, a black-holed network) fail at once with
    // WriteError(connection, or outcome_unknown when its COMMIT was in flight) whose text starts
    // with `reason`. It shuts the socket down; the writer is unusable afterwards.
    void interrupt(const std::string& reason) override;

    // The catalog's view of target `target` (same order as PipelineConfig::targets()).
    const TableSchema& table(std::size_t target = 0) const override;

    // "children: public.order_lines child of public.orders (...)", or "".
    std::string describe() const override;

    // Pooled mode (pg_pool.h): each call (connect, write, coordinate, prune) runs on a connection
    // lent for that call only; between calls the writer keeps its catalog reading, not the
    // connection. lend() before the call, take_back() after it, on the owner's thread.
    void lend(PgLink& link);
    void take_back();

    // Writes every part, and stores `offsets` (streams), in one transaction whose last
    // statement is COMMIT. Returns only after COMMIT succeeded.
    void write(const std::vector<TargetRows>& parts,
               const std::vector<OffsetWrite>& offsets) override;
    // Streams: one membership and lease round (pg_stream_state.h), its own transaction.
    Coordination coordinate(const CoordinationRequest& request) override;

    // Deletes inbox entries and tombstones older than their retention. Its own transaction.
    void prune() override;
    // schema_evolution: basic (pg_schema_evolution.h).
    bool evolve(std::size_t target, const std::vector<std::string>& statements) override;

  private:
    void connect_now();
    void write_now(const std::vector<TargetRows>& parts, const std::vector<OffsetWrite>& offsets);
    void throw_if_interrupted(const WriteError& error) const;

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Creates rmq2pg's own tables (sql/002_rmq2pg_state.sql); idempotent. Throws WriteError.
void migrate(const PgConnectionSettings& settings);

// Reads every target table and checks the pipeline's mapping against it (columns exist, key
// columns carry a unique index for ignore/upsert, rmq2pg's tables exist when needed); used by
// --check-config. Returns the first target's table. Throws WriteError.
// (A pipeline of streams also needs rmq2pg_state.stream_offsets.)
TableSchema check_pipeline_against_database(const PgConnectionSettings& settings,
                                            const PipelineConfig& pipeline);

// What rmq2pg_state holds for `pipeline`'s streams; its own short connection. Throws WriteError.
std::vector<StreamReading> read_streams(const PgConnectionSettings& settings,
                                        const std::string& pipeline);

// `rmq2pg replay`: moves `streams` of `pipeline` to `from` (see pg_stream_state.h). Throws
// WriteError.
void replay(const PgConnectionSettings& settings, const std::string& pipeline,
            const std::vector<std::string>& streams, const StreamStart& from);

}  // namespace rmq2pg
