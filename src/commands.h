// The one-shot modes of the command line: --check-config and --migrate, each returning the
// process's exit code (cli.h) after writing what it found to stderr.
#pragma once

#include <string>

#include "config.h"

namespace rmq2pg {

// The file is already valid (it loaded); checks the tables, columns and unique keys of every
// pipeline against the database when it is reachable.
int check_config_command(const Config& config);
// Creates rmq2pg_state.inbox and rmq2pg_state.tombstones (sql/002_rmq2pg_state.sql); idempotent.
int migrate_command(const Config& config);
// rmq2pg replay: moves the stored offsets of `pipeline`'s streams (all, or `stream`) to `from`.
int replay_command(const Config& config, const std::string& pipeline, const std::string& from,
                   const std::string& stream);

}  // namespace rmq2pg
