// AMQP topic pattern matching; see topic_match.h.
#include "topic_match.h"

#include <vector>

namespace rmq2pg {
namespace {

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = text.find('.', start);
        out.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
        if (dot == std::string_view::npos)
            return out;
        start = dot + 1;
    }
}

// Classic backtracking over words; '#' tries every split. Patterns are short, keys too.
bool match_words(const std::vector<std::string_view>& p, std::size_t pi,
                 const std::vector<std::string_view>& k, std::size_t ki) {
    if (pi == p.size())
        return ki == k.size();
    if (p[pi] == "#") {
        for (std::size_t skip = ki; skip <= k.size(); ++skip)
            if (match_words(p, pi + 1, k, skip))
                return true;
        return false;
    }
    if (ki == k.size())
        return false;
    if (p[pi] != "*" && p[pi] != k[ki])
        return false;
    return match_words(p, pi + 1, k, ki + 1);
}

}  // namespace

std::optional<std::string> validate_topic_pattern(const std::string& pattern) {
    if (pattern.empty())
        return "must not be empty (use # to match every routing key)";
    for (std::string_view word : words(pattern)) {
        bool wildcard = word.find_first_of("*#") != std::string_view::npos;
        if (wildcard && word != "*" && word != "#")
            return "'*' and '#' must stand alone between dots (e.g. orders.*.created)";
    }
    return std::nullopt;
}

bool topic_matches(std::string_view pattern, std::string_view routing_key) {
    return match_words(words(pattern), 0, words(routing_key), 0);
}

}  // namespace rmq2pg
