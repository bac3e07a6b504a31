// The running daemon: workers, observability and the main loop that turns signals into events,
// until SIGTERM/SIGINT. Returns the process's exit code (cli.h).
#pragma once

#include <string>

#include "config.h"

namespace rmq2pg {

// `config` was loaded from `config_path`; SIGHUP loads the file again.
int run_daemon(const std::string& config_path, const Config& config);

}  // namespace rmq2pg
