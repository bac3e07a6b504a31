// What a failed database operation means for the caller (reconnect, retry, set the row aside, or
// fix the schema), and the SQLSTATE classes behind it: pure, so the mapping is unit-tested.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace rmq2pg {

class WriteError : public std::runtime_error {
  public:
    enum class Kind {
        connection,       // the connection is gone: reconnect, then retry the batch
        transient,        // serialization failure, deadlock, disk full...: retry the batch
        outcome_unknown,  // COMMIT sent, no answer: retry (insert mode may duplicate)
        bad_data,         // a row is unacceptable: isolate it, commit the rest
        schema,           // table/column/permission problem: no row can succeed until fixed
        // A stream's lease was taken (another worker, or a replay) since this worker claimed
        // it: the transaction rolled back; drop the batch and read the streams again from
        // what rmq2pg_state holds.
        fenced,
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
    // PostgreSQL refused the truncate of change events (on_truncate: truncate) of table
    // `target` (no privilege, a foreign key): bad_data blamed on the truncate, which is then
    // poison, not on any row.
    static WriteError refused_truncate(const std::string& what, std::string sqlstate,
                                       std::size_t target) {
        WriteError e(Kind::bad_data, what, std::move(sqlstate), std::nullopt, target);
        e.truncate_refused_ = true;
        return e;
    }
    bool truncate_refused() const { return truncate_refused_; }

  private:
    Kind kind_;
    std::string sqlstate_;
    std::optional<std::size_t> failed_row_;
    std::size_t failed_target_;
    bool truncate_refused_ = false;
};

const char* to_string(WriteError::Kind kind);

// PostgreSQL's (and libpq's) multi-line messages on one line, for log lines and headers.
std::string one_line(std::string text);

// SQLSTATE (PostgreSQL's five-character error code) -> what the caller does next.
WriteError::Kind classify_sqlstate(const std::string& sqlstate);

}  // namespace rmq2pg
