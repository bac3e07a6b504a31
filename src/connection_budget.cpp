// The connection budget's arithmetic (connection_budget.h). The rule, also in docs/operations.md:
//   usable  = max_connections − reserved (superuser_reserved_connections, reserved_connections)
//   allowed = min(usable − in use − kept free,  role limit − role's in use,
//                 database limit − database's in use)
// where kept free = max(3, 10 % of usable). The config may open at most `allowed`.
#include "connection_budget.h"

#include <algorithm>

namespace rmq2pg {

namespace {

bool polls_streams(const Config& config) {
    for (const auto& pipeline : config.pipelines)
        if (pipeline.is_stream())
            return true;
    return false;
}

}  // namespace

int connections_needed(const Config& config) {
    int total = 0;
    for (const auto& pipeline : config.pipelines)
        total += pipeline.workers;
    if (uses_pg_pool(config))
        total = config.postgres_pool_size;
    return total + (polls_streams(config) ? 1 : 0);
}

std::string connections_needed_why(const Config& config) {
    std::string why = uses_pg_pool(config) ? "postgres.pool_size" : "one per worker";
    if (polls_streams(config))
        why += ", plus 1 for the streams' status poller";
    return why;
}

int slots_kept_free(int usable) {
    // Three: an operator's psql, a monitoring probe and a migration can still connect when a
    // small server is otherwise full; a tenth on large ones, where other clients are many.
    return std::max(3, (usable + 9) / 10);
}

namespace {

std::string limit_text(int limit, int in_use) {
    if (limit < 0)
        return "limit none";
    return "limit " + std::to_string(limit) + " (" + std::to_string(in_use) + " in use)";
}

}  // namespace

BudgetVerdict judge_connection_budget(int needed, const ServerConnections& s,
                                      const std::string& why) {
    BudgetVerdict v;
    v.needed = needed;
    int usable = s.max_connections - s.reserved;
    int kept_free = slots_kept_free(usable);
    int allowed = usable - s.in_use - kept_free;
    if (s.role_limit >= 0)
        allowed = std::min(allowed, s.role_limit - s.role_in_use);
    if (s.database_limit >= 0)
        allowed = std::min(allowed, s.database_limit - s.database_in_use);
    v.allowed = std::max(0, allowed);
    v.ok = needed <= v.allowed;

    std::string numbers = "server " + s.server + " max_connections " +
                          std::to_string(s.max_connections) + " (" + std::to_string(s.reserved) +
                          " reserved for superusers), " + std::to_string(s.in_use) + " in use";
    if (s.rmq2pg_in_use > 0)
        numbers += " (" + std::to_string(s.rmq2pg_in_use) + " of them rmq2pg's)";
    numbers += ", role " + s.role + " " + limit_text(s.role_limit, s.role_in_use);
    if (s.database_limit >= 0)
        numbers +=
            ", database " + s.database + " " + limit_text(s.database_limit, s.database_in_use);
    std::string need = "config needs " + std::to_string(needed) + " PostgreSQL connection" +
                       (needed == 1 ? "" : "s") + " (" + why + ")";
    if (v.ok)
        v.message = need + "; " + numbers + ": " + std::to_string(v.allowed) + " can be taken, " +
                    std::to_string(kept_free) + " stay free for other clients";
    else
        v.message = need + "; " + numbers + ": at most " + std::to_string(v.allowed) +
                    " can be taken without locking other clients out (" +
                    std::to_string(kept_free) + " stay free for them): " +
                    (why.rfind("postgres.pool_size", 0) == 0 ? "lower postgres.pool_size"
                                                             : "lower pipelines' workers") +
                    ", or raise the server's "
                    "max_connections or the role's CONNECTION LIMIT";
    return v;
}

}  // namespace rmq2pg
