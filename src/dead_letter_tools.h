// `rmq2pg dead-letters list|show|replay|purge`: an operator's triage of a pipeline's dead-letter
// queue. Every command reads the queue without taking anything it does not act on: the messages
// it leaves keep their place and their order.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace rmq2pg {

struct DeadLetterOptions {
    enum class Action { list, show, replay, purge };
    Action action = Action::list;
    std::string pipeline;              // "" = every pipeline that dead-letters
    std::string reason;                // "" = every message; else reason_matches()
    std::optional<std::size_t> limit;  // at most this many matching messages
    bool dry_run = false;              // replay: say what would move, move nothing
    bool full = false;                 // show: whole bodies
    std::string queue;                 // the dead-letter queue, when the config cannot say
};

// The queue holding `pipeline`'s dead letters: "<queue>.dead" (or dead_letter.routing_key) on
// the default exchange, or a queue the config declares bound to the user's dead_letter.exchange
// with that key. nullopt, with `why`, when rmq2pg cannot know it.
std::optional<std::string> dead_letter_queue_of(const Config& config,
                                                const PipelineConfig& pipeline, std::string& why);

// The arguments after "dead-letters" (without --config, which cli.cpp takes). Returns what is
// wrong, or nullopt.
std::optional<std::string> parse_dead_letter_options(const std::vector<std::string>& args,
                                                     DeadLetterOptions& out);

// Runs the action against the config's broker; prints to stdout, problems to stderr; returns the
// exit code (cli.h).
int dead_letters_command(const Config& config, const DeadLetterOptions& options);

}  // namespace rmq2pg
