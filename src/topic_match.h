// AMQP topic routing-key patterns for `routes:` ('*' = exactly one word, '#' = zero or more
// words, words separated by '.'). Pure code.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rmq2pg {

// nullopt when `pattern` is a valid topic pattern, else what is wrong with it.
std::optional<std::string> validate_topic_pattern(const std::string& pattern);

bool topic_matches(std::string_view pattern, std::string_view routing_key);

}  // namespace rmq2pg
