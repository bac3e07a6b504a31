// A value's text converted for its column's type, apart from the JSON parser (row_mapper.cpp):
// COPY escaping, bytea hex, epoch seconds to timestamp, array elements, numbers that must fit.
#pragma once

#include <string>
#include <string_view>

#include "table_schema.h"

namespace rmq2pg {

// COPY text-format escaping of one field value (backslash, tab, newline, carriage return).
void append_copy_escaped(std::string& out, std::string_view value);

// Raw bytes → bytea's hex input form: \x and two hex digits per byte.
void append_hex_bytea(std::string& out, std::string_view bytes);

// Base64 (RFC 4648, padded or not) → bytea's hex input form. False, `out` untouched, when
// `base64` is not base64.
bool append_base64_bytea(std::string& out, std::string_view base64);
// Seconds since the epoch (fractions allowed) → "YYYY-MM-DD HH:MM:SS.ffffff+00". False, `out`
// untouched, when `number` is not a number or not a time a timestamp column can take.
bool append_epoch(std::string& out, std::string_view number);

// A PostgreSQL array element: always double-quoted, so commas, braces, spaces and the word
// NULL survive as text.
void append_array_element_quoted(std::string& field, std::string_view s);

// What a JSON number must fit to go into a column. Most types take the number's exact digits
// (text keeps them; numeric holds up to 131072 digits before the point and 16383 after, so
// 1e400 fits). Integer and floating-point types cannot hold every number: PostgreSQL would
// refuse such a value only by failing the batch's COPY, so the mapper refuses it first, with a
// reason saying why.
enum class NumberTarget { digits, int2, int4, int8, float4, float8 };

NumberTarget number_target_of(const ColumnInfo& info);

// Empty when the JSON number `token` fits a column of `target`, else the reason it does not.
// The slow path of number_fits.
std::string number_misfit(std::string_view token, NumberTarget target);

// Whether the JSON number `token` fits a column of `target` (not `digits`); if not, `error`
// says why. An integer of up to 18, 9 or 4 digits fits bigint, integer or smallint without being
// parsed: every id of every message passes here, hence inline.
inline bool number_fits(std::string_view token, NumberTarget target, std::string& error) {
    if (target == NumberTarget::int8 || target == NumberTarget::int4 ||
        target == NumberTarget::int2) {
        const std::size_t sure_digits = target == NumberTarget::int8   ? 18
                                        : target == NumberTarget::int4 ? 9
                                                                       : 4;
        std::size_t digits = 0;
        for (char c : token)
            digits += c >= '0' && c <= '9' ? 1 : 0;
        // A JSON number with no '.', 'e' or 'E' is an optional '-' and its digits.
        if (digits + (token[0] == '-' ? 1 : 0) == token.size() && digits <= sure_digits)
            return true;
    }
    error = number_misfit(token, target);
    return error.empty();
}

}  // namespace rmq2pg
