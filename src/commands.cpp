// --check-config, --migrate and replay (commands.h): short runs against the database, messages on
// stderr.
// --check-config's rule for the database: unreachable is a note (exit 0: the file itself is
// valid); reachable but refusing the role, over the connection budget, or lacking a table,
// column or unique key is an error (exit 78).
#include "commands.h"

#include <algorithm>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cli.h"
#include "connection_budget.h"
#include "pg_budget.h"
#include "pg_writer.h"
#include "rfc3339.h"

namespace rmq2pg {

namespace {

// The server's answer to the config's role and its connection budget. Returns the exit code so
// far, and false in `go_on` when nothing more can be checked (no server answered).
int check_database_access(const Config& config, bool& go_on) {
    const char* file = config.source_file.c_str();
    BudgetProbe probe = probe_server_connections(
        config.postgres_url, std::chrono::seconds(config.postgres_connect_timeout_s));
    go_on = true;
    switch (probe.outcome) {
        case BudgetProbe::Outcome::unreachable:
            // Not a config error: the file may be checked on a machine without the database.
            std::fprintf(stderr, "%s: note: PostgreSQL not reachable, tables not checked: %s\n",
                         file, probe.reason.c_str());
            go_on = false;
            return kExitOk;
        case BudgetProbe::Outcome::refused:
            // A server answered and turned the role away: the credentials (or the database
            // name) in the config are wrong, and starting would only retry in vain.
            std::fprintf(stderr, "%s: postgres.url: PostgreSQL at %s refused role '%s': %s\n", file,
                         probe.server.c_str(), probe.role.c_str(), probe.reason.c_str());
            go_on = false;
            return kExitConfig;
        case BudgetProbe::Outcome::unmeasured:
            std::fprintf(stderr, "%s: warning: connection budget not checked: %s\n", file,
                         probe.reason.c_str());
            return kExitOk;
        case BudgetProbe::Outcome::measured:
            break;
    }
    BudgetVerdict verdict = judge_connection_budget(connections_needed(config), probe.numbers,
                                                    connections_needed_why(config));
    if (verdict.ok) {
        std::fprintf(stderr, "%s: note: connection budget: %s\n", file, verdict.message.c_str());
        return kExitOk;
    }
    std::fprintf(stderr, "%s: connection budget: %s\n", file, verdict.message.c_str());
    return kExitConfig;
}

}  // namespace

int check_config_command(const Config& config) {
    // A reachable database lets us check the role, the connection budget, tables, columns and
    // unique keys too; an unreachable one is not a config error.
    setenv("PGCONNECT_TIMEOUT", "5", /*overwrite=*/0);
    bool go_on = true;
    int status = check_database_access(config, go_on);
    if (!go_on)
        return status;
    // The tables are read through the daemon's own connection settings, given up on after 5 s.
    auto settings = PgConnectionSettings::of(config, "rmq2pg --check-config");
    settings.connect_timeout_s = std::min<std::int64_t>(settings.connect_timeout_s, 5);
    for (const auto& pipeline : config.pipelines) {
        try {
            check_pipeline_against_database(settings, pipeline);
        } catch (const WriteError& e) {
            if (e.kind() == WriteError::Kind::connection) {
                std::fprintf(stderr, "%s: note: PostgreSQL not reachable, tables not checked: %s\n",
                             config.source_file.c_str(), e.what());
                return status;
            }
            std::fprintf(stderr, "%s: pipelines '%s': %s\n", config.source_file.c_str(),
                         pipeline.name.c_str(), e.what());
            status = kExitConfig;
        }
    }
    if (status == kExitOk)
        std::fprintf(stderr, "%s: valid\n", config.source_file.c_str());
    return status;
}

int migrate_command(const Config& config) {
    try {
        migrate(PgConnectionSettings::of(config, "rmq2pg --migrate"));
    } catch (const WriteError& e) {
        std::fprintf(stderr, "rmq2pg --migrate: %s\n", e.what());
        return kExitFailure;
    }
    std::fprintf(stderr,
                 "rmq2pg --migrate: rmq2pg_state.inbox, tombstones, stream_offsets and "
                 "stream_members are in place\n");
    return kExitOk;
}

int replay_command(const Config& config, const std::string& pipeline, const std::string& from,
                   const std::string& stream) {
    const PipelineConfig* p = nullptr;
    for (const auto& candidate : config.pipelines)
        if (candidate.name == pipeline)
            p = &candidate;
    if (p == nullptr || !p->is_stream()) {
        std::fprintf(stderr, "rmq2pg replay: %s has no pipeline '%s' reading streams\n",
                     config.source_file.c_str(), pipeline.c_str());
        return kExitUsage;
    }
    std::vector<std::string> streams = p->streams;
    if (!stream.empty()) {
        if (std::find(streams.begin(), streams.end(), stream) == streams.end()) {
            std::fprintf(stderr, "rmq2pg replay: pipeline '%s' does not read stream '%s'\n",
                         pipeline.c_str(), stream.c_str());
            return kExitUsage;
        }
        streams = {stream};
    }
    std::string error;
    auto start = parse_stream_start(from, error);
    if (!start || start->kind == StreamStart::Kind::last ||
        start->kind == StreamStart::Kind::next) {
        std::fprintf(stderr, "rmq2pg replay: --from %s\n",
                     start ? "'last' and 'next' are no replay: use first, an offset or a time"
                           : error.c_str());
        return kExitUsage;
    }
    if (start->kind == StreamStart::Kind::interval) {
        // Fixed now: the replay means the same point however late a worker picks it up.
        auto now = std::chrono::system_clock::now();
        start->kind = StreamStart::Kind::time;
        start->text = rfc3339(now - std::chrono::seconds(start->value), false);
    }
    try {
        replay(PgConnectionSettings::of(config, "rmq2pg replay"), pipeline, streams, *start);
    } catch (const WriteError& e) {
        std::fprintf(stderr, "rmq2pg replay: %s\n", e.what());
        return kExitFailure;
    }
    for (const auto& s : streams)
        std::fprintf(stderr, "rmq2pg replay: pipeline '%s' stream '%s' moved to %s\n",
                     pipeline.c_str(), s.c_str(), start->text.c_str());
    return kExitOk;
}

}  // namespace rmq2pg
