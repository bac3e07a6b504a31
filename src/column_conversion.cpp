// The conversions of column_conversion.h: COPY escaping (SSE2 where there is), bytea hex,
// epoch seconds to timestamp text, array element quoting, and whether a number fits its column.
#include "column_conversion.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>

#include "mapping_reasons.h"

namespace rmq2pg {

namespace {

// The position of the first byte COPY text needs escaped (backslash, tab, newline, carriage
// return) at or after `i`, or `n`. Bodies rarely hold one, and scanning them a byte at a time was
// the largest single cost per message in the profile; SSE2 (every x86-64) checks 16 at once.
std::size_t next_copy_special(const char* p, std::size_t i, std::size_t n) {
#if defined(__SSE2__)
    const __m128i backslash = _mm_set1_epi8('\\'), tab = _mm_set1_epi8('\t');
    const __m128i newline = _mm_set1_epi8('\n'), carriage = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        __m128i hits =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmpeq_epi8(v, tab)),
                         _mm_or_si128(_mm_cmpeq_epi8(v, newline), _mm_cmpeq_epi8(v, carriage)));
        if (int mask = _mm_movemask_epi8(hits))
            return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
#endif
    for (; i < n; ++i)
        if (p[i] == '\\' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
            return i;
    return n;
}

// The epoch seconds a timestamp column can take: from 0001-01-01 (the format below has no BC)
// to PostgreSQL's own end, 294277-01-01 00:00:00 (exclusive).
constexpr double kFirstEpochSecond = -62135596800.0;
constexpr double kEndEpochSecond = 9224318016000.0;

}  // namespace

void append_copy_escaped(std::string& out, std::string_view value) {
    const char* p = value.data();
    const std::size_t n = value.size();
    std::size_t start = 0;
    while (true) {
        std::size_t i = next_copy_special(p, start, n);
        out.append(p + start, i - start);
        if (i == n)
            return;
        out += '\\';
        switch (p[i]) {
            case '\t':
                out += 't';
                break;
            case '\n':
                out += 'n';
                break;
            case '\r':
                out += 'r';
                break;
            default:
                out += '\\';
        }
        start = i + 1;
    }
}

void append_hex_bytea(std::string& out, std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    out += "\\x";  // bytea's hex input form; COPY escaping doubles the backslash later
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
}

bool append_base64_bytea(std::string& out, std::string_view base64) {
    static const char digits[] = "0123456789abcdef";
    while (!base64.empty() && base64.back() == '=')
        base64.remove_suffix(1);
    const std::size_t size = out.size();
    out += "\\x";
    unsigned bits = 0, count = 0;
    for (char c : base64) {
        unsigned v;
        if (c >= 'A' && c <= 'Z')
            v = static_cast<unsigned>(c - 'A');
        else if (c >= 'a' && c <= 'z')
            v = static_cast<unsigned>(c - 'a' + 26);
        else if (c >= '0' && c <= '9')
            v = static_cast<unsigned>(c - '0' + 52);
        else if (c == '+' || c == '-')  // '-' and '_': the URL-safe alphabet
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else {
            out.resize(size);
            return false;
        }
        bits = (bits << 6) | v;
        count += 6;
        if (count >= 8) {
            count -= 8;
            const unsigned byte = (bits >> count) & 0xff;
            out += digits[byte >> 4];
            out += digits[byte & 15];
        }
    }
    // A lone sixth of a byte left over is not base64.
    if (count >= 6) {
        out.resize(size);
        return false;
    }
    return true;
}

bool append_epoch(std::string& out, std::string_view number) {
    std::string text(number);
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(seconds))
        return false;
    double whole = std::floor(seconds);
    // Range check before the cast: a double beyond time_t is undefined behaviour (fuzzing found
    // 1E+029), and years outside PostgreSQL's range would only fail the whole COPY later.
    if (whole < kFirstEpochSecond || whole >= kEndEpochSecond)
        return false;
    auto micros = static_cast<long>(std::llround((seconds - whole) * 1e6));
    auto t = static_cast<std::time_t>(whole);
    if (micros >= 1000000) {
        micros -= 1000000;
        ++t;
    }
    if (t >= static_cast<std::time_t>(kEndEpochSecond))
        return false;
    std::tm tm{};
    if (gmtime_r(&t, &tm) == nullptr)
        return false;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
    out += buf;
    return true;
}

void append_array_element_quoted(std::string& field, std::string_view s) {
    field += '"';
    for (char c : s) {
        if (c == '"' || c == '\\')
            field += '\\';
        field += c;
    }
    field += '"';
}

NumberTarget number_target_of(const ColumnInfo& info) {
    if (info.category != TypeCategory::text)
        return NumberTarget::digits;
    // Names as format_type() prints them (a domain over these is left to PostgreSQL).
    if (info.type_name == "bigint")
        return NumberTarget::int8;
    if (info.type_name == "integer")
        return NumberTarget::int4;
    if (info.type_name == "smallint")
        return NumberTarget::int2;
    if (info.type_name == "double precision")
        return NumberTarget::float8;
    if (info.type_name == "real")
        return NumberTarget::float4;
    return NumberTarget::digits;
}

std::string number_misfit(std::string_view token, NumberTarget target) {
    switch (target) {
        case NumberTarget::digits:
            return {};
        case NumberTarget::int2:
        case NumberTarget::int4:
        case NumberTarget::int8: {
            const char* type = target == NumberTarget::int8   ? "bigint"
                               : target == NumberTarget::int4 ? "integer"
                                                              : "smallint";
            // PostgreSQL's integer input takes digits only: no fraction, no exponent.
            if (token.find_first_of(".eE") != std::string_view::npos)
                return "number " + quoted_value(token) + " is not an integer, as " + type +
                       " needs";
            std::int64_t value = 0;
            auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value);
            const std::int64_t limit =
                target == NumberTarget::int8   ? std::numeric_limits<std::int64_t>::max()
                : target == NumberTarget::int4 ? std::numeric_limits<std::int32_t>::max()
                                               : std::numeric_limits<std::int16_t>::max();
            if (error != std::errc() || end != token.data() + token.size() || value > limit ||
                value < -limit - 1)
                return "number " + quoted_value(token) + " is out of range for " + type;
            return {};
        }
        case NumberTarget::float4:
        case NumberTarget::float8: {
            // As PostgreSQL's float input: a number that overflows, or underflows to zero, is
            // out of range; one that only loses precision is rounded.
            std::string text(token);
            errno = 0;
            const bool is_double = target == NumberTarget::float8;
            double value = is_double ? std::strtod(text.c_str(), nullptr)
                                     : static_cast<double>(std::strtof(text.c_str(), nullptr));
            if (errno == ERANGE && (value == 0.0 || std::isinf(value)))
                return "number " + quoted_value(token) + " is out of range for " +
                       (is_double ? "double precision" : "real");
            return {};
        }
    }
    return {};
}

}  // namespace rmq2pg
