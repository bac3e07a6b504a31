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

// What the daemon holds at most while it runs: one connection per worker of every pipeline, or
// postgres.pool_size when the workers share the pool (uses_pg_pool), plus one for the status
// poller when some pipeline reads streams (it reads their offsets every 5 s, one pipeline after
// the other on a short connection). --check-config and --migrate open one at a time, and not
// while the daemon runs.
int connections_needed(const Config& config);
// Where that number comes from, for the verdict's message: "one per worker",
// "postgres.pool_size", each with ", plus 1 for the streams' status poller" when it counts.
std::string connections_needed_why(const Config& config);

// Slots kept free for the other clients of the server (psql of an operator, monitoring,
// migrations, the applications that read the tables): 10 % of the usable slots, at least 3.
int slots_kept_free(int usable);

struct BudgetVerdict {
    bool ok = false;
    int needed = 0;
    int allowed = 0;      // at most this many can be taken now without locking others out
    std::string message;  // the numbers, one line
};

// `why`: connections_needed_why() of the config; a pooled config is told to lower
// postgres.pool_size, one with dedicated connections its workers.
BudgetVerdict judge_connection_budget(int needed, const ServerConnections& server,
                                      const std::string& why = "one per worker");

}  // namespace rmq2pg
