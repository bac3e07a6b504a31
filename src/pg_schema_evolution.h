// schema_evolution: basic, the libpqxx part: runs the DDL schema_evolution.cpp planned in its
// own transaction, serialised per table by a transaction-level advisory lock, and retried when
// another worker or instance evolved the same table at the same moment.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace rmq2pg {

// Runs `statements` (CREATE TABLE IF NOT EXISTS / ALTER TABLE … ADD COLUMN IF NOT EXISTS) on
// `qualified` in one transaction under `statement_timeout_ms`. A race lost to another session
// (42P07 duplicate table, 42701 duplicate column, 23505 the pg_type row of a table created
// twice, 40P01 deadlock) is retried, up to 5 transactions; then, and for every other error, the
// libpqxx exception propagates. Returns whether the table changed: false when another session
// had made the same change first (every statement is IF NOT EXISTS).
bool run_schema_evolution(pqxx::connection_base& conn, std::int64_t statement_timeout_ms,
                          const std::string& qualified, const std::vector<std::string>& statements);

}  // namespace rmq2pg
