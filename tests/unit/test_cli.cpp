// The command line: which mode each argument list asks for, and what a wrong one says.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cli.h"

using rmq2pg::CommandLine;
using rmq2pg::parse_command_line;
using Mode = CommandLine::Mode;

TEST_CASE("--config FILE alone runs the daemon with that file", "[cli]") {
    for (const auto& args : {std::vector<std::string>{"--config", "/etc/rmq2pg.yaml"},
                             std::vector<std::string>{"--config=/etc/rmq2pg.yaml"}}) {
        CommandLine cli = parse_command_line(args);
        CHECK(cli.mode == Mode::run);
        CHECK(cli.config_path == "/etc/rmq2pg.yaml");
    }
}

TEST_CASE("--check-config and --migrate are modes in either argument order", "[cli]") {
    CHECK(parse_command_line({"--check-config", "--config", "a.yaml"}).mode == Mode::check_config);
    CHECK(parse_command_line({"--config", "a.yaml", "--check-config"}).mode == Mode::check_config);
    CHECK(parse_command_line({"--migrate", "--config=a.yaml"}).mode == Mode::migrate);
    SECTION("--check-config wins over --migrate: validating never writes") {
        CHECK(parse_command_line({"--migrate", "--check-config", "--config", "a.yaml"}).mode ==
              Mode::check_config);
    }
}

TEST_CASE("the last --config given is the file", "[cli]") {
    CHECK(parse_command_line({"--config", "a.yaml", "--config=b.yaml"}).config_path == "b.yaml");
}

TEST_CASE("--version and --help need no config and stop the parsing", "[cli]") {
    CHECK(parse_command_line({"--version"}).mode == Mode::version);
    CHECK(parse_command_line({"--help"}).mode == Mode::help);
    CHECK(parse_command_line({"-h"}).mode == Mode::help);
    // What follows is not looked at, a wrong argument included.
    CHECK(parse_command_line({"--version", "--bogus"}).mode == Mode::version);
    // What comes before is: a wrong argument first is a usage error.
    CHECK(parse_command_line({"--bogus", "--version"}).mode == Mode::usage_error);
}

TEST_CASE("an unknown argument is a usage error naming it", "[cli]") {
    CommandLine cli = parse_command_line({"--config", "a.yaml", "--chek-config"});
    CHECK(cli.mode == Mode::usage_error);
    CHECK(cli.error == "unknown argument '--chek-config'");
}

TEST_CASE("a mode without --config FILE is a usage error", "[cli]") {
    for (const auto& args :
         {std::vector<std::string>{}, std::vector<std::string>{"--check-config"},
          std::vector<std::string>{"--migrate"}, std::vector<std::string>{"--config="}}) {
        CommandLine cli = parse_command_line(args);
        CHECK(cli.mode == Mode::usage_error);
        CHECK(cli.error == "--config FILE is required");
    }
    SECTION("--config as the last argument has no value: it is not understood") {
        CommandLine cli = parse_command_line({"--check-config", "--config"});
        CHECK(cli.mode == Mode::usage_error);
        CHECK(cli.error == "unknown argument '--config'");
    }
}

TEST_CASE("the exit codes are the sysexits ones systemd's unit relies on", "[cli]") {
    CHECK(rmq2pg::kExitUsage == 64);
    CHECK(rmq2pg::kExitConfig == 78);  // RestartPreventExitStatus=78 in systemd/rmq2pg.service
}
