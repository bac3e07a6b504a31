// rmq2pg: RabbitMQ → PostgreSQL. main() is a checklist: parse the command line (cli.cpp), load
// the config (config.cpp), then run the mode asked for: --check-config / --migrate
// (commands.cpp) or the daemon (daemon.cpp).
#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "config.h"
#include "daemon.h"
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
    return rmq2pg::run_daemon(cli.config_path, config);
}
