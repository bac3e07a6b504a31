// The `start:` forms of a stream; see stream_start.h.
#include "stream_start.h"

#include <cctype>
#include <ctime>

namespace rmq2pg {

namespace {

// Reads exactly `digits` decimal digits at `at`.
bool read_digits(const std::string& text, std::size_t& at, int digits, int& out) {
    out = 0;
    for (int i = 0; i < digits; ++i, ++at) {
        if (at >= text.size() || !std::isdigit(static_cast<unsigned char>(text[at])))
            return false;
        out = out * 10 + (text[at] - '0');
    }
    return true;
}

bool expect(const std::string& text, std::size_t& at, const char* choices) {
    if (at >= text.size())
        return false;
    for (const char* c = choices; *c; ++c)
        if (text[at] == *c) {
            ++at;
            return true;
        }
    return false;
}

// 2026-11-24T08:00:00Z, 2026-11-24T08:00:00.5+01:00: whole seconds kept (a stream's
// timestamp filter works on chunks anyway).
std::optional<std::int64_t> parse_rfc3339(const std::string& text) {
    std::size_t at = 0;
    std::tm tm{};
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!read_digits(text, at, 4, year) || !expect(text, at, "-") ||
        !read_digits(text, at, 2, month) || !expect(text, at, "-") ||
        !read_digits(text, at, 2, day) || !expect(text, at, "Tt ") ||
        !read_digits(text, at, 2, hour) || !expect(text, at, ":") ||
        !read_digits(text, at, 2, minute) || !expect(text, at, ":") ||
        !read_digits(text, at, 2, second))
        return std::nullopt;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    if (at < text.size() && text[at] == '.') {
        ++at;
        std::size_t digits_from = at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])))
            ++at;
        if (at == digits_from)
            return std::nullopt;
    }
    std::int64_t offset_s = 0;
    if (expect(text, at, "Zz")) {
    } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
        int sign = text[at] == '-' ? -1 : 1;
        ++at;
        int oh = 0, om = 0;
        if (!read_digits(text, at, 2, oh) || !expect(text, at, ":") ||
            !read_digits(text, at, 2, om) || oh > 23 || om > 59)
            return std::nullopt;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return std::nullopt;  // RFC 3339 needs the zone
    }
    if (at != text.size())
        return std::nullopt;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return static_cast<std::int64_t>(timegm(&tm)) - offset_s;
}

}  // namespace

std::optional<StreamStart> parse_stream_start(const std::string& text, std::string& error) {
    StreamStart start;
    start.text = text;
    if (text == "first" || text == "last" || text == "next") {
        start.kind = text == "first"  ? StreamStart::Kind::first
                     : text == "last" ? StreamStart::Kind::last
                                      : StreamStart::Kind::next;
        return start;
    }
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
        ++digits;
    if (digits > 0 && digits <= 18 && digits == text.size()) {
        start.kind = StreamStart::Kind::offset;
        start.value = std::stoll(text);
        return start;
    }
    // An interval: a whole number and one unit (s, m, h, D or d).
    if (digits > 0 && digits <= 9 && digits + 1 == text.size()) {
        std::int64_t n = std::stoll(text.substr(0, digits));
        char unit = text.back();
        std::int64_t seconds = unit == 's'                  ? 1
                               : unit == 'm'                ? 60
                               : unit == 'h'                ? 3600
                               : unit == 'D' || unit == 'd' ? 86400
                                                            : 0;
        if (seconds > 0) {
            start.kind = StreamStart::Kind::interval;
            start.value = n * seconds;
            return start;
        }
    }
    if (auto epoch = parse_rfc3339(text)) {
        start.kind = StreamStart::Kind::time;
        start.value = *epoch;
        return start;
    }
    error = "'" + text +
            "' is not first, last, next, an offset (a whole number), an RFC 3339 time "
            "(2026-11-24T08:00:00Z) or an interval (30m, 6h, 7D)";
    return std::nullopt;
}

std::int64_t start_epoch_seconds(const StreamStart& start, std::int64_t now_epoch_s) {
    return start.kind == StreamStart::Kind::interval ? now_epoch_s - start.value : start.value;
}

}  // namespace rmq2pg
