// rmq2pg: RabbitMQ → PostgreSQL. main() is a checklist: parse the command line (cli.cpp), load
// the config (config.cpp), then run the mode asked for: --check-config / --migrate
// (commands.cpp), an operator's tool (dead_letter_tools.cpp, suggest.cpp) or the daemon
// (daemon.cpp).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "config.h"
#include "daemon.h"
#include "dead_letter_tools.h"
#include "suggest.h"
#include "version.h"

int main(int argc, char** argv) {
    using rmq2pg::CommandLine;
    CommandLine cli = rmq2pg::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    switch (cli.mode) {
        case CommandLine::Mode::version:
            std::printf("rmq2pg %s\n", RMQ2PG_VERSION);
            return rmq2pg::kExitOk;
        case CommandLine::Mode::help:
            std::fputs(rmq2pg::kUsage, stdout);
            return rmq2pg::kExitOk;
        case CommandLine::Mode::usage_error:
            std::fprintf(stderr, "rmq2pg: %s\n%s", cli.error.c_str(), rmq2pg::kUsage);
            return rmq2pg::kExitUsage;
        default:
            break;
    }

    rmq2pg::DeadLetterOptions dead_letter_options;
    std::optional<std::string> tool_error;
    if (cli.mode == CommandLine::Mode::dead_letters)
        tool_error = rmq2pg::parse_dead_letter_options(cli.tool_args, dead_letter_options);
    rmq2pg::SuggestOptions suggest_options;
    if (cli.mode == CommandLine::Mode::suggest)
        tool_error =
            rmq2pg::parse_suggest_options(cli.tool_args, !cli.config_path.empty(), suggest_options);
    if (tool_error) {
        std::fprintf(stderr, "rmq2pg: %s\n%s", tool_error->c_str(), rmq2pg::kUsage);
        return rmq2pg::kExitUsage;
    }
    if (cli.mode == CommandLine::Mode::suggest && cli.config_path.empty())
        return rmq2pg::suggest_command(nullptr, suggest_options);

    rmq2pg::Config config;
    try {
        config = rmq2pg::load_config_file(cli.config_path);
    } catch (const rmq2pg::ConfigError& e) {
        for (const auto& problem : e.problems())
            std::fprintf(stderr, "%s\n", problem.c_str());
        return rmq2pg::kExitConfig;
    }
    if (cli.mode == CommandLine::Mode::check_config)
        return rmq2pg::check_config_command(config);
    if (cli.mode == CommandLine::Mode::migrate)
        return rmq2pg::migrate_command(config);
    if (cli.mode == CommandLine::Mode::replay)
        return rmq2pg::replay_command(config, cli.pipeline, cli.from, cli.stream);
    if (cli.mode == CommandLine::Mode::dead_letters)
        return rmq2pg::dead_letters_command(config, dead_letter_options);
    if (cli.mode == CommandLine::Mode::suggest)
        return rmq2pg::suggest_command(&config, suggest_options);
    return rmq2pg::run_daemon(cli.config_path, config);
}
