// The reasons a message cannot be mapped, as they reach log lines and dead-letter headers: in
// plain words (not the JSON parser's internals) and bounded in size whatever the message holds.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rmq2pg {

// The most bytes of a value a reason quotes: enough to recognise it, small enough for a log line
// and a header (a value can be megabytes long).
constexpr std::size_t kQuotedValueMax = 200;

// `value` as a reason quotes it: whole up to kQuotedValueMax bytes, else its first
// kQuotedValueMax bytes (not splitting a UTF-8 character), "…" and its length in bytes.
std::string quoted_value(std::string_view value);

// Why `body` (rejected by the JSON parser, whose own message is `parser_message`) is not JSON,
// starting "body is not JSON: ". Says in plain words when the body is empty, only whitespace,
// not UTF-8 (with the offset of the first bad byte), starts with a character no JSON value
// starts with, or ends inside a string, object or array (truncated); else the parser's message.
std::string invalid_json_reason(std::string_view body, std::string_view parser_message);

// The offset of the first byte of `text` that is not part of a valid UTF-8 character (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or text.size() if it is all valid.
std::size_t first_invalid_utf8(std::string_view text);

}  // namespace rmq2pg
