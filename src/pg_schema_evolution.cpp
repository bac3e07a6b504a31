// schema_evolution: basic, the libpqxx part; see pg_schema_evolution.h.
#include "pg_schema_evolution.h"

#include <pqxx/pqxx>

#include "write_plan.h"

namespace rmq2pg {

namespace {

bool lost_race(const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    if (state == "42P07" || state == "42701" || state == "23505" || state == "40P01")
        return true;
    // libpqxx 6.4 throws a deadlock without its code.
    return dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr;
}

}  // namespace

bool run_schema_evolution(pqxx::connection_base& conn, std::int64_t statement_timeout_ms,
                          const std::string& qualified,
                          const std::vector<std::string>& statements) {
    // Five: a race is lost at most once per competing session with the lock held; the others
    // see the table or column once they hold it (IF NOT EXISTS). The write guard bounds them all.
    constexpr int kAttempts = 5;
    for (int attempt = 1;; ++attempt) {
        try {
            pqxx::work tx(conn, "schema_evolution");
            // The lock is the transaction's (a pooler in transaction mode is fine with it): two
            // sessions evolving one table take turns, and the second's IF NOT EXISTS sees what
            // the first committed. Keyed by the table's name in rmq2pg's own lock space.
            tx.exec("SET LOCAL statement_timeout = " + std::to_string(statement_timeout_ms) +
                    "; SELECT pg_advisory_xact_lock(hashtext('rmq2pg.schema_evolution'), "
                    "hashtext(" +
                    quote_literal(qualified) + "))");
            // Columns before and after, under the lock: whether this session changed anything.
            const std::string columns =
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(" +
                quote_literal(qualified) + ") AND attnum > 0 AND NOT attisdropped";
            const auto before = tx.exec(columns)[0][0].as<std::int64_t>();
            for (const auto& statement : statements)
                tx.exec(statement);
            const auto after = tx.exec(columns)[0][0].as<std::int64_t>();
            tx.commit();
            return after != before;
        } catch (const pqxx::sql_error& e) {
            if (attempt >= kAttempts || !lost_race(e))
                throw;
        }
    }
}

}  // namespace rmq2pg
