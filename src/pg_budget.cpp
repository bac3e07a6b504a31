// probe_server_connections (pg_budget.h): one connection, one read-only query over pg_settings,
// pg_roles, pg_database and pg_stat_activity. A connection through a pooler reaches a server whose
// slots the pooler manages, so when the server's port differs from the one dialled the figures
// are not used.
#include "pg_budget.h"

#include "pg_writer.h"

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include <memory>

namespace rmq2pg {

namespace {

// The connection string's host, port and user, with libpq's defaults (PGHOST, PGUSER, the OS
// user, ...) where it says nothing: what a message can name before any connection exists.
void describe_target(const std::string& url, BudgetProbe& probe) {
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> parsed(
        PQconninfoParse(url.c_str(), &error), PQconninfoFree);
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> defaults(PQconndefaults(),
                                                                            PQconninfoFree);
    if (error != nullptr)
        PQfreemem(error);
    auto value = [&](const char* keyword) -> std::string {
        for (auto* list : {parsed.get(), defaults.get()})
            for (auto* o = list; o != nullptr && o->keyword != nullptr; ++o)
                if (std::string(o->keyword) == keyword && o->val != nullptr && *o->val != '\0')
                    return o->val;
        return "";
    };
    std::string host = value("host"), port = value("port"), user = value("user");
    probe.server = (host.empty() ? "localhost" : host) + ":" + (port.empty() ? "5432" : port);
    probe.role = user.empty() ? "(default)" : user;
}

// Client backends only (background workers and WAL senders have slots of their own). Without
// pg_read_all_stats another role's sessions show no backend_type: they are counted as clients
// (a parallel worker among them makes the count err on the safe side).
constexpr const char* kFiguresQuery = R"SQL(
WITH clients AS (
  SELECT usename, datname, application_name FROM pg_stat_activity
   WHERE pid <> pg_backend_pid() AND usesysid IS NOT NULL
     AND coalesce(backend_type, 'client backend') = 'client backend')
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT count(*) FROM clients)::int,
       current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user),
       (SELECT count(*) FROM clients WHERE usename = current_user)::int,
       current_database(),
       (SELECT datconnlimit FROM pg_database WHERE datname = current_database()),
       (SELECT count(*) FROM clients WHERE datname = current_database())::int,
       (SELECT count(*) FROM clients WHERE application_name LIKE 'rmq2pg/%')::int,
       inet_server_port()
)SQL";

}  // namespace

BudgetProbe::Outcome classify_connect_failure(const std::string& message) {
    // The server's own words for turning a client away (SQLSTATE 28000, 28P01, 3D000, 42501);
    // libpq reports no SQLSTATE for a failed connection, only the text.
    static const char* const refusals[] = {
        "authentication failed for user",  // password, md5, scram, peer, ident
        "no pg_hba.conf entry",           "pg_hba.conf rejects connection",
        "no password supplied",  // the server asked for one the config does not give
        "is not permitted to log in",     "permission denied for database",
    };
    for (const char* words : refusals)
        if (message.find(words) != std::string::npos)
            return BudgetProbe::Outcome::refused;
    // 'role "x" does not exist', 'database "x" does not exist'.
    if (message.find("FATAL:") != std::string::npos &&
        message.find("\" does not exist") != std::string::npos &&
        (message.find("role \"") != std::string::npos ||
         message.find("database \"") != std::string::npos))
        return BudgetProbe::Outcome::refused;
    return BudgetProbe::Outcome::unreachable;
}

bool connect_failure_is_full(const std::string& message) {
    // SQLSTATE 53300: max_connections ("sorry, too many clients already", "remaining connection
    // slots are reserved…") and the role's or database's CONNECTION LIMIT ("too many connections
    // for role/database").
    static const char* const full[] = {
        "too many clients already",
        "remaining connection slots are reserved",
        "too many connections for",
    };
    for (const char* words : full)
        if (message.find(words) != std::string::npos)
            return true;
    return false;
}

BudgetProbe probe_server_connections(const std::string& url, std::chrono::seconds connect_timeout) {
    BudgetProbe probe;
    describe_target(url, probe);
    std::unique_ptr<pqxx::connection> conn;
    try {
        // The daemon's own connection string: connect_timeout, TCP keepalives and
        // tcp_user_timeout, so a server that stops answering cannot hold the start up.
        PgConnectionSettings settings;
        settings.url = url;
        settings.connect_timeout_s = connect_timeout.count();
        settings.application_name = "rmq2pg connection budget";
        conn = std::make_unique<pqxx::connection>(connection_string(settings));
    } catch (const std::exception& e) {
        probe.reason = one_line(e.what());
        probe.outcome = classify_connect_failure(probe.reason);
        return probe;
    }
    try {
        pqxx::read_transaction tx(*conn, "connection budget");
        // A server too busy to answer within this must not hold the start up for long.
        tx.exec("SET LOCAL statement_timeout = '5s'");
        pqxx::row row = tx.exec1(kFiguresQuery);
        ServerConnections& n = probe.numbers;
        n.server = probe.server;
        n.max_connections = row[0].as<int>();
        n.reserved = row[1].as<int>();
        n.in_use = row[2].as<int>();
        n.role = row[3].as<std::string>();
        n.role_is_superuser = row[4].as<bool>(false);
        n.role_limit = row[5].as<int>(-1);
        n.role_in_use = row[6].as<int>();
        n.database = row[7].as<std::string>();
        n.database_limit = row[8].as<int>(-1);
        n.database_in_use = row[9].as<int>();
        n.rmq2pg_in_use = row[10].as<int>();
        probe.role = n.role;
        // Where the server says it listens against where we dialled: a pooler (or a proxy)
        // in between when they differ, or when one side is a Unix socket and the other not.
        const char* host = conn->hostname();
        bool dialled_socket = host == nullptr || *host == '\0' || *host == '/';
        std::string dialled_port = conn->port() != nullptr ? conn->port() : "";
        std::string server_port = row[11].is_null() ? "" : row[11].as<std::string>();
        bool direct = dialled_socket ? server_port.empty() : server_port == dialled_port;
        if (!direct) {
            probe.outcome = BudgetProbe::Outcome::unmeasured;
            probe.reason =
                "the server behind " + probe.server + " listens on " +
                (server_port.empty() ? std::string("a Unix socket") : "port " + server_port) +
                ": a pooler such as PgBouncer (or a proxy) is in between, and its "
                "settings, not the server's, bound these connections";
            return probe;
        }
        probe.outcome = BudgetProbe::Outcome::measured;
    } catch (const std::exception& e) {
        probe.outcome = BudgetProbe::Outcome::unmeasured;
        probe.reason = "the figures could not be read: " + one_line(e.what());
    }
    return probe;
}

}  // namespace rmq2pg
