// `rmq2pg suggest`: a first pipeline mapping written from what already exists, the table's
// columns and a few messages of the queue (peeked at, never consumed), for a new user to review
// instead of writing every column by hand.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace rmq2pg {

struct SuggestOptions {
    std::string pipeline;  // with --config: the pipeline whose queue and table are looked at
    // Without --config: the servers, the queue and the table ("schema.table" or "table").
    std::string amqp_url, postgres_url, queue, table;
    std::size_t samples = 20;  // messages peeked at
};

// The arguments after "suggest" (without --config). Returns what is wrong, or nullopt;
// `have_config` says whether --config was given (then --pipeline is needed, else the URLs).
std::optional<std::string> parse_suggest_options(const std::vector<std::string>& args,
                                                 bool have_config, SuggestOptions& out);

// Folds a column or field name for matching: lower case, without '_' and '-' (order_id,
// orderId and OrderID are one name). Pure.
std::string fold_name(const std::string& name);

// Prints the suggested config on stdout (comments flag what it could not map or convert) and
// a summary on stderr; returns the exit code (cli.h). `config` is null without --config.
int suggest_command(const Config* config, const SuggestOptions& options);

}  // namespace rmq2pg
