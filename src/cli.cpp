// parse_command_line (cli.h): the arguments in, a CommandLine out; printing and exiting are the
// caller's (main.cpp).
#include "cli.h"

namespace rmq2pg {

const char* const kUsage =
    "usage: rmq2pg --config FILE          run until SIGTERM/SIGINT; SIGHUP reloads FILE\n"
    "       rmq2pg --check-config --config FILE\n"
    "                                     validate the file (and, when PostgreSQL is reachable,\n"
    "                                     the role, the connection budget and the tables);\n"
    "                                     exit 0 valid, 78 invalid\n"
    "       rmq2pg --migrate --config FILE\n"
    "                                     create rmq2pg's own tables (dedupe inbox, delete\n"
    "                                     tombstones); idempotent\n"
    "       rmq2pg --version\n";

CommandLine parse_command_line(const std::vector<std::string>& args) {
    CommandLine out;
    bool check_only = false;
    bool migrate_only = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--config" && i + 1 < args.size()) {
            out.config_path = args[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            out.config_path = arg.substr(9);
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "--migrate") {
            migrate_only = true;
        } else if (arg == "--version") {
            out.mode = CommandLine::Mode::version;
            return out;
        } else if (arg == "--help" || arg == "-h") {
            out.mode = CommandLine::Mode::help;
            return out;
        } else {
            out.mode = CommandLine::Mode::usage_error;
            out.error = "unknown argument '" + arg + "'";
            return out;
        }
    }
    if (out.config_path.empty()) {
        out.mode = CommandLine::Mode::usage_error;
        out.error = "--config FILE is required";
    } else if (check_only) {
        out.mode = CommandLine::Mode::check_config;
    } else if (migrate_only) {
        out.mode = CommandLine::Mode::migrate;
    }
    return out;
}

}  // namespace rmq2pg
