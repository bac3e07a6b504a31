// The command line: what rmq2pg was asked to do (run, --check-config, --migrate, --version,
// --help, the operator's tools `dead-letters` and `suggest`) and the config file, parsed without
// side effects so it can be unit-tested.
#pragma once

#include <string>
#include <vector>

namespace rmq2pg {

// sysexits.h codes, which systemd and supervisors understand (RestartPreventExitStatus=78).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // a runtime failure: restarting may help
constexpr int kExitUsage = 64;   // a wrong command line
constexpr int kExitConfig = 78;  // an invalid configuration: restarting will not help

extern const char* const kUsage;

struct CommandLine {
    enum class Mode {
        run,
        check_config,
        migrate,
        version,
        help,
        usage_error,
        dead_letters,
        suggest,
        replay
    };
    Mode mode = Mode::run;
    std::string config_path;
    // dead_letters, suggest: the arguments after the subcommand's name other than --config,
    // parsed by the tool (dead_letter_tools.h, suggest.h).
    std::vector<std::string> tool_args;
    std::string error;  // usage_error: what is wrong, e.g. "unknown argument '--x'"
    // replay: `rmq2pg replay --config FILE --pipeline NAME --from WHERE [--stream S]`.
    std::string pipeline, from, stream;
};

// `args` without the program name. --version and --help win as soon as they are seen (what
// follows them is not looked at); --check-config wins over --migrate; a mode other than
// --version and --help needs --config FILE (or --config=FILE).
CommandLine parse_command_line(const std::vector<std::string>& args);

}  // namespace rmq2pg
