// Casting sample values on the server (pg_value_probe.h): each SELECT on its own, outside any
// transaction block, so one refused value does not abort the others; a SELECT writes nothing.
#include "pg_value_probe.h"

#include <pqxx/pqxx>

#include "write_error.h"

namespace rmq2pg {

std::vector<std::string> probe_values(const PgConnectionSettings& settings,
                                      const std::vector<ValueProbe>& probes) {
    std::vector<std::string> out;
    try {
        pqxx::connection conn(connection_string(settings));
        pqxx::nontransaction tx(conn, "suggest");
        tx.exec("SET statement_timeout = " + std::to_string(settings.write_timeout_ms));
        for (const auto& probe : probes) {
            std::string error;
            try {
                // type_name comes from format_type(): valid SQL for the column's own type.
                tx.exec_params("SELECT $1::" + probe.type_name, probe.text);
            } catch (const pqxx::sql_error& e) {
                error = e.what();
                if (auto newline = error.find('\n'); newline != std::string::npos)
                    error.erase(newline);
                if (!e.sqlstate().empty())
                    error += " (SQLSTATE " + e.sqlstate() + ")";
            }
            out.push_back(std::move(error));
        }
    } catch (const pqxx::broken_connection& e) {
        throw WriteError(WriteError::Kind::connection, std::string("PostgreSQL: ") + e.what());
    }
    return out;
}

}  // namespace rmq2pg
