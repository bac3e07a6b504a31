// parse_command_line (cli.h): the arguments in, a CommandLine out; printing and exiting are the
// caller's (main.cpp).
#include "cli.h"

#include <utility>

namespace rmq2pg {

const char* const kUsage =
    "usage: rmq2pg --config FILE          run until SIGTERM/SIGINT; SIGHUP reloads FILE\n"
    "       rmq2pg --check-config --config FILE\n"
    "                                     validate the file (and, when PostgreSQL is reachable,\n"
    "                                     the role, the connection budget and the tables);\n"
    "                                     exit 0 valid, 78 invalid\n"
    "       rmq2pg --migrate --config FILE\n"
    "                                     create rmq2pg's own tables (dedupe inbox, delete\n"
    "                                     tombstones, stream offsets); idempotent\n"
    "       rmq2pg replay --config FILE --pipeline NAME --from first|OFFSET|TIME [--stream S]\n"
    "                                     move a stream pipeline's stored offsets (every stream,\n"
    "                                     or S); running instances pick it up within 10 s\n"
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

namespace {

CommandLine parse_replay(const std::vector<std::string>& args) {
    CommandLine out;
    out.mode = CommandLine::Mode::replay;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        std::string* target = arg == "--config"     ? &out.config_path
                              : arg == "--pipeline" ? &out.pipeline
                              : arg == "--from"     ? &out.from
                              : arg == "--stream"   ? &out.stream
                                                    : nullptr;
        if (target == nullptr || i + 1 >= args.size()) {
            out.mode = CommandLine::Mode::usage_error;
            out.error = target ? "replay: " + arg + " needs a value"
                               : "replay: unknown argument '" + arg + "'";
            return out;
        }
        *target = args[++i];
    }
    for (const auto& [value, name] :
         {std::pair<const std::string*, const char*>{&out.config_path, "--config FILE"},
          {&out.pipeline, "--pipeline NAME"},
          {&out.from, "--from first|OFFSET|TIME"}}) {
        if (value->empty()) {
            out.mode = CommandLine::Mode::usage_error;
            out.error = std::string("replay: ") + name + " is required";
            return out;
        }
    }
    return out;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& args) {
    if (!args.empty() && args[0] == "replay")
        return parse_replay(args);
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
