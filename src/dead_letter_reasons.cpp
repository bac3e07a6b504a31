// Folding dead-letter reasons into groups; see dead_letter_reasons.h.
#include "dead_letter_reasons.h"

#include <algorithm>
#include <cctype>

#include "dead_letter.h"

namespace rmq2pg {

namespace {

bool word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// PostgreSQL's "DETAIL: Failing row contains (…)." lists the whole row: values, not wording.
void fold_failing_row(std::string& text) {
    constexpr std::string_view kRow = "Failing row contains (";
    auto start = text.find(kRow);
    if (start == std::string::npos)
        return;
    start += kRow.size();
    auto limit = text.find(". CONTEXT:", start);
    auto close = text.rfind(')', limit == std::string::npos ? std::string::npos : limit);
    if (close == std::string::npos || close < start)
        close = text.size();
    text.replace(start, close - start, "\xE2\x80\xA6");
}

// PostgreSQL's "CONTEXT: COPY t, line 3: "…"" quotes the whole COPY line, whose own quotes (a
// JSON body) end redact_values()' quoted value early: everything up to the last quote goes.
void fold_copy_line(std::string& text) {
    auto copy = text.find("COPY ");
    if (copy == std::string::npos)
        return;
    auto start = text.find(": \"", copy);
    if (start == std::string::npos)
        return;
    start += 3;
    auto sqlstate = text.rfind(" (SQLSTATE ");
    auto close = text.rfind('"', sqlstate == std::string::npos ? std::string::npos : sqlstate);
    if (close == std::string::npos || close < start)
        return;
    text.replace(start, close - start, "\xE2\x80\xA6");
}

}  // namespace

std::string reason_group(std::string_view reason) {
    std::string raw(reason);
    fold_failing_row(raw);
    fold_copy_line(raw);
    std::string redacted = redact_values(raw);
    // bounded_reason() appends " (N bytes in all)" to a reason it shortened.
    if (auto at = redacted.rfind(" bytes in all)");
        at != std::string::npos && at + 14 == redacted.size()) {
        auto open = redacted.rfind(" (", at);
        if (open != std::string::npos)
            redacted.erase(open);
    }
    std::string out;
    out.reserve(redacted.size());
    std::size_t i = 0;
    while (i < redacted.size()) {
        char c = redacted[i];
        bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
        if (!digit || (i > 0 && word_char(redacted[i - 1]))) {
            // Inside a word (t_7, 22P02): copy the whole word.
            do {
                out += redacted[i++];
            } while (i < redacted.size() && word_char(redacted[i]) && word_char(c));
            continue;
        }
        std::size_t end = i;
        while (end < redacted.size() && std::isdigit(static_cast<unsigned char>(redacted[end])))
            ++end;
        bool sqlstate = i >= 9 && redacted.compare(i - 9, 9, "SQLSTATE ") == 0;
        if (sqlstate || (end < redacted.size() && word_char(redacted[end]))) {
            out.append(redacted, i, end - i);  // 23502 after "SQLSTATE", 22P02: codes
        } else {
            out += 'N';
        }
        i = end;
    }
    return out;
}

bool reason_matches(std::string_view filter, std::string_view reason) {
    if (filter.empty())
        return true;
    std::string needle = lower(filter);
    return lower(reason).find(needle) != std::string::npos ||
           lower(reason_group(reason)).find(needle) != std::string::npos;
}

}  // namespace rmq2pg
