// --check-config and --migrate (commands.h): short runs against the database, messages on stderr.
#include "commands.h"

#include <cstdio>
#include <cstdlib>

#include "cli.h"
#include "pg_writer.h"

namespace rmq2pg {

int check_config_command(const Config& config) {
    // A reachable database lets us check tables, columns and unique keys too; an unreachable
    // one is not a config error.
    setenv("PGCONNECT_TIMEOUT", "5", /*overwrite=*/0);
    int status = kExitOk;
    for (const auto& pipeline : config.pipelines) {
        try {
            check_pipeline_against_database(config.postgres_url, pipeline);
        } catch (const WriteError& e) {
            if (e.kind() == WriteError::Kind::connection) {
                std::fprintf(stderr, "%s: note: PostgreSQL not reachable, tables not checked: %s\n",
                             config.source_file.c_str(), e.what());
                return kExitOk;
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
        migrate(config.postgres_url);
    } catch (const WriteError& e) {
        std::fprintf(stderr, "rmq2pg --migrate: %s\n", e.what());
        return kExitFailure;
    }
    std::fprintf(stderr,
                 "rmq2pg --migrate: rmq2pg_state.inbox and rmq2pg_state.tombstones are in place\n");
    return kExitOk;
}

}  // namespace rmq2pg
