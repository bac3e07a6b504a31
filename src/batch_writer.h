// What a worker writes its batches through: one transaction per write, COMMIT last. PgWriter is
// the implementation; unit tests of the worker hand a fake. Errors are typed by what the caller
// does next.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "stream_offsets.h"
#include "table_schema.h"
#include "write_error.h"

namespace rmq2pg {

// The rows of one target in a write: COPY text, rows separated by '\n', no trailing newline.
struct TargetRows {
    std::size_t target = 0;
    const std::string* rows = nullptr;
    std::size_t count = 0;
    // A change-event truncate (on_truncate: truncate) comes first: every row here was
    // delivered after it. truncate_version is its source position ("" when it had none).
    bool truncate = false;
    std::string truncate_version;
};

class BatchWriter {
  public:
    virtual ~BatchWriter() = default;
    // Connects and reads every target table from the catalog. Throws WriteError.
    virtual void connect() = 0;
    // The catalog's view of table `target` (table_targets() order: routes, then children).
    virtual const TableSchema& table(std::size_t target) const = 0;
    // What the startup line says about the tables beyond their names (children and how their
    // deletes are done); "" when nothing.
    virtual std::string describe() const { return {}; }
    // Writes every part in one transaction whose last statement is COMMIT; returns only after
    // COMMIT succeeded. `offsets` (streams; empty for a queue) are stored in that transaction,
    // each fenced by its lease's epoch: a lost lease throws WriteError(fenced) and nothing
    // commits. Throws WriteError.
    virtual void write(const std::vector<TargetRows>& parts,
                       const std::vector<OffsetWrite>& offsets) = 0;
    // Streams: one round of membership and leases (stream_offsets.h), its own transaction.
    // Throws WriteError.
    virtual Coordination coordinate(const CoordinationRequest& request) = 0;
    // schema_evolution: basic: runs `statements` (schema_evolution.h) on table `target` in a
    // transaction of their own, before any batch that needs them. The catalog is read again by
    // the next connect(). Returns whether the table changed (false: another session changed it
    // first). Throws WriteError.
    virtual bool evolve(std::size_t target, const std::vector<std::string>& statements) {
        (void)target;
        (void)statements;
        throw WriteError(WriteError::Kind::schema, "this writer cannot change tables");
    }
    // Deletes inbox entries and tombstones past their retention. Its own transaction.
    virtual void prune() = 0;
    // Thread-safe: makes a connect() or write() blocked on the owner's thread fail at once with
    // WriteError (connection, or outcome_unknown if its COMMIT was in flight) whose text starts
    // with `reason`. The writer is unusable afterwards.
    virtual void interrupt(const std::string& reason) = 0;
};

}  // namespace rmq2pg
