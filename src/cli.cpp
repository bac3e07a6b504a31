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
    "       rmq2pg dead-letters list|show|replay|purge --config FILE [--pipeline P]\n"
    "              [--reason TEXT] [--limit N] [--queue Q] [--full (show)] [--dry-run (replay)]\n"
    "                                     triage a pipeline's dead letters: group them by reason,\n"
    "                                     show them, move them back where they were first\n"
    "                                     published, or remove them (docs/operations.md)\n"
    "       rmq2pg suggest (--config FILE --pipeline P | --amqp-url URL --postgres-url URL\n"
    "              --queue Q --table T) [--samples N]\n"
    "                                     print a pipeline YAML mapping the table's columns to\n"
    "                                     the fields of messages peeked at in the queue\n"
    "       rmq2pg --version\n";

CommandLine parse_command_line(const std::vector<std::string>& args) {
    CommandLine out;
    bool check_only = false;
    bool migrate_only = false;
    std::size_t first = 0;
    if (!args.empty() && (args[0] == "dead-letters" || args[0] == "suggest")) {
        out.mode =
            args[0] == "suggest" ? CommandLine::Mode::suggest : CommandLine::Mode::dead_letters;
        first = 1;
    }
    const bool tool = first == 1;
    for (std::size_t i = first; i < args.size(); ++i) {
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
        } else if (tool) {
            out.tool_args.push_back(arg);
        } else {
            out.mode = CommandLine::Mode::usage_error;
            out.error = "unknown argument '" + arg + "'";
            return out;
        }
    }
    if (tool) {
        if (check_only || migrate_only) {
            out.mode = CommandLine::Mode::usage_error;
            out.error = std::string("--check-config and --migrate do not go with ") + args[0];
        } else if (out.config_path.empty() && out.mode == CommandLine::Mode::dead_letters) {
            out.mode = CommandLine::Mode::usage_error;
            out.error = "--config FILE is required";
        }
    } else if (out.config_path.empty()) {
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
