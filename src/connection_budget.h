// The PostgreSQL connection budget: how many connections a config opens, and whether the server
// can give them without taking the slots other clients need. Pure: handed the server's numbers
// (pg_budget.cpp reads them), so the arithmetic is unit-tested without a database.
#pragma once

#include <string>

#include "config.h"

namespace rmq2pg {

// What the server says about its connection slots, read on a connection of the config's role.
// Counts exclude the connection that read them (it closes before any worker starts).
struct ServerConnections {
    std::string server;  // "127.0.0.1:5432", for messages
    int max_connections = 0;
    int reserved = 0;  // superuser_reserved_connections (+ reserved_connections, PostgreSQL 16)
    int in_use = 0;    // client connections of every role
    std::string role;
    bool role_is_superuser = false;
    int role_limit = -1;  // pg_roles.rolconnlimit; -1 = none
    int role_in_use = 0;
    std::string database;
    int database_limit = -1;  // pg_database.datconnlimit; -1 = none
    int database_in_use = 0;
    int rmq2pg_in_use = 0;  // of in_use, application_name rmq2pg/… (rmq2pg instances' workers)
};

// One connection per worker of every pipeline: each worker owns its PgWriter. Nothing else in
// the daemon holds a PostgreSQL connection while it runs (the status sampler polls the broker
// only; --check-config and --migrate open one at a time, and not while the daemon runs).
int connections_needed(const Config& config);

// Slots kept free for the other clients of the server (psql of an operator, monitoring,
// migrations, the applications that read the tables): 10 % of the usable slots, at least 3.
int slots_kept_free(int usable);

struct BudgetVerdict {
    bool ok = false;
    int needed = 0;
    int allowed = 0;      // at most this many can be taken now without locking others out
    std::string message;  // the numbers, one line
};

BudgetVerdict judge_connection_budget(int needed, const ServerConnections& server);

}  // namespace rmq2pg
