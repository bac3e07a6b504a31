// Reasons for unmappable messages in plain words and bounded size. Only the failure path runs
// this code, so it favours clear diagnosis over speed.
#include "mapping_reasons.h"

#include <cstdio>
#include <vector>

namespace rmq2pg {

std::string quoted_value(std::string_view value) {
    if (value.size() <= kQuotedValueMax)
        return std::string(value);
    std::size_t cut = kQuotedValueMax;
    // Back to the first byte of a character, so the reason stays valid UTF-8.
    while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80)
        --cut;
    return std::string(value.substr(0, cut)) + "… (" + std::to_string(value.size()) + " bytes)";
}

std::size_t first_invalid_utf8(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t length;
        unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            if (c == 0xE0)
                low = 0xA0;  // overlong
            else if (c == 0xED)
                high = 0x9F;  // UTF-16 surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            if (c == 0xF0)
                low = 0x90;  // overlong
            else if (c == 0xF4)
                high = 0x8F;  // above U+10FFFF
        } else {
            return i;  // a continuation byte first, an overlong lead (C0, C1) or F5..FF
        }
        if (i + length > n || p[i + 1] < low || p[i + 1] > high)
            return i;
        for (std::size_t k = 2; k < length; ++k)
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
        i += length;
    }
    return n;
}

namespace {

bool is_json_whitespace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A byte as a reason shows it: the character when printable ASCII, else its hex value.
std::string shown_byte(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F)
        return std::string("'") + c + "'";
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", u);
    return hex;
}

}  // namespace

std::string invalid_json_reason(std::string_view body, std::string_view parser_message) {
    const std::string prefix = "body is not JSON: ";
    if (body.empty())
        return prefix + "the body is empty";
    std::size_t first = 0;
    while (first < body.size() && is_json_whitespace(body[first]))
        ++first;
    if (first == body.size())
        return prefix + "the body is only whitespace";
    if (std::size_t bad = first_invalid_utf8(body); bad < body.size())
        return prefix + "the body is not valid UTF-8 (byte " + shown_byte(body[bad]) +
               " at offset " + std::to_string(bad) + ")";
    const char start = body[first];
    if (std::string_view("{[\"-0123456789tfn").find(start) == std::string_view::npos)
        return prefix + "it starts with " + shown_byte(start) + ", which no JSON value starts with";
    if (start == 't' || start == 'f' || start == 'n') {
        std::size_t end = first;
        while (end < body.size() && body[end] >= 'a' && body[end] <= 'z')
            ++end;
        std::string_view word = body.substr(first, end - first);
        if (word != "true" && word != "false" && word != "null")
            return prefix + "it starts with the word '" + quoted_value(word) +
                   "', which is not true, false or null (text needs double quotes)";
    }
    // Where the body ends: inside a string, or with objects or arrays left open, it was cut
    // short. A closing bracket that does not match leaves the verdict to the parser.
    std::vector<char> open;
    bool in_string = false;
    for (std::size_t i = first; i < body.size(); ++i) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            open.push_back(c);
        } else if (c == '}' || c == ']') {
            if (open.empty() || open.back() != (c == '}' ? '{' : '['))
                return prefix + std::string(parser_message);
            open.pop_back();
        }
    }
    if (in_string)
        return prefix + "the body ends inside a string (truncated?)";
    if (!open.empty())
        return prefix + "the body ends before its " + (open.back() == '{' ? "object" : "array") +
               " is closed (truncated?)";
    return prefix + std::string(parser_message);
}

}  // namespace rmq2pg
