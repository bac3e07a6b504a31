// Asking PostgreSQL, on one short connection, for the numbers of the connection budget
// (connection_budget.h) — and, on the way, whether the server accepts the config's role at all.
// Used at start and by --check-config; the verdict itself is pure code elsewhere.
#pragma once

#include <chrono>
#include <string>

#include "connection_budget.h"

namespace rmq2pg {

struct BudgetProbe {
    enum class Outcome {
        measured,     // `numbers` hold the server's figures
        unreachable,  // no server answered (refused, timed out, name unknown, overloaded)
        refused,      // a server answered and turned the role away (password, pg_hba, role or
                      // database unknown, no CONNECT privilege): a configuration problem
        unmeasured,   // connected, but the figures would not mean what the budget needs (a
                      // pooler such as PgBouncer in between) or could not be read (permissions)
    };
    Outcome outcome = Outcome::unreachable;
    ServerConnections numbers;
    std::string server;  // "127.0.0.1:5432" (or the socket directory), from the connection string
    std::string role;    // the role the connection string logs in as
    std::string reason;  // what went wrong, for every outcome but measured
};

// Connects within `connect_timeout` (the statements get a deadline of their own), reads the
// figures and disconnects.
BudgetProbe probe_server_connections(const std::string& url, std::chrono::seconds connect_timeout);

// Pure: a failed connection's message (libpq's text) → refused or unreachable.
BudgetProbe::Outcome classify_connect_failure(const std::string& message);
// Pure: the server turned the connection away for lack of slots (max_connections, the role's or
// the database's CONNECTION LIMIT) — "unreachable" above, but a measured "no room" to a reload.
bool connect_failure_is_full(const std::string& message);

}  // namespace rmq2pg
