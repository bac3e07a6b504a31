// Debezium's and Kafka Connect's logical types → the text PostgreSQL parses, exactly (no
// floating point anywhere): Decimal and VariableScaleDecimal from base64 two's-complement bytes,
// Date from days, Time/MicroTime/NanoTime from time of day, Timestamp/MicroTimestamp/
// NanoTimestamp from the epoch (UTC), bytes from base64. Pure functions of the wire values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rmq2pg {

// Standard base64 (RFC 4648, with or without '=' padding). Nullopt when not base64.
std::optional<std::string> base64_decode(std::string_view text);

// Big-endian two's-complement unscaled bytes and a scale → "-12.345". Any length, exact.
std::string decimal_from_twos_complement(std::string_view bytes, int scale);

// Units of a count since midnight or since the epoch.
enum class TimeUnit { millis, micros, nanos };

// Days since 1970-01-01 → "YYYY-MM-DD" (years before 1 as "YYYY-MM-DD BC", as PostgreSQL does).
std::string date_from_days(std::int64_t days);
// Time since midnight → "HH:MM:SS.ffffff" (nanoseconds beyond micros are cut, as PostgreSQL
// keeps microseconds). Nullopt when negative or past 24:00:00.
std::optional<std::string> time_of_day(std::int64_t count, TimeUnit unit);
// Time since the epoch (UTC) → "YYYY-MM-DD HH:MM:SS.ffffff+00" (BC as PostgreSQL writes it).
std::string timestamp_from_epoch(std::int64_t count, TimeUnit unit);

// What a Debezium/Kafka Connect schema "name" asks of a value; `none` leaves it as JSON.
enum class LogicalType {
    none,
    decimal,                 // org.apache.kafka.connect.data.Decimal: base64 bytes + scale
    variable_scale_decimal,  // io.debezium.data.VariableScaleDecimal: {scale, value}
    date,                    // io.debezium.time.Date, org.apache.kafka.connect.data.Date
    time_millis,             // io.debezium.time.Time, org.apache.kafka.connect.data.Time
    time_micros,             // io.debezium.time.MicroTime
    time_nanos,              // io.debezium.time.NanoTime
    timestamp_millis,        // io.debezium.time.Timestamp, org.apache.kafka.connect.data.Timestamp
    timestamp_micros,        // io.debezium.time.MicroTimestamp
    timestamp_nanos,         // io.debezium.time.NanoTimestamp
    micro_duration,          // io.debezium.time.MicroDuration: microseconds
    json,                    // io.debezium.data.Json: a string holding JSON text
    bytes,                   // schema type "bytes" without a name: base64
    // ZonedTimestamp, ZonedTime, Uuid, Enum, EnumSet, Xml: strings PostgreSQL parses as sent.
};

// `name` is the field schema's "name" (may be empty), `type` its "type".
LogicalType logical_type_of(std::string_view name, std::string_view type);

}  // namespace rmq2pg
