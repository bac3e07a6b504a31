// Logical types of change events; see debezium_types.h.
#include "debezium_types.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "civil_date.h"

namespace rmq2pg {

namespace {

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

// Floor division and modulo, for times before the epoch.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::int64_t per_second(TimeUnit unit) {
    return unit == TimeUnit::millis ? 1000 : unit == TimeUnit::micros ? 1000000 : 1000000000;
}

std::string date_text(std::int64_t days, bool& bc) {
    std::int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    bc = y <= 0;  // year 0 is 1 BC
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(bc ? 1 - y : y), m,
                  d);
    return buf;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=')
        text.remove_suffix(1);
    if (text.size() % 4 == 1)
        return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (char c : text) {
        int v = base64_value(c);
        if (v < 0)
            return std::nullopt;
        buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xFF);
        }
    }
    return out;
}

std::string decimal_from_twos_complement(std::string_view bytes, int scale) {
    // Magnitude as base-256 digits, negated when the sign bit is set.
    std::vector<unsigned> mag(bytes.begin(), bytes.end());
    for (auto& b : mag)
        b &= 0xFF;
    const bool negative = !mag.empty() && (mag[0] & 0x80) != 0;
    if (negative) {
        for (auto& b : mag)
            b = ~b & 0xFF;
        for (std::size_t i = mag.size(); i-- > 0;) {  // + 1
            if (++mag[i] <= 0xFF)
                break;
            mag[i] = 0;
        }
    }
    // Repeated division by 10 of the base-256 number: quadratic, fine for column-sized values.
    std::string digits;
    while (std::any_of(mag.begin(), mag.end(), [](unsigned b) { return b != 0; })) {
        unsigned remainder = 0;
        for (auto& b : mag) {
            unsigned cur = (remainder << 8) | b;
            b = cur / 10;
            remainder = cur % 10;
        }
        digits += static_cast<char>('0' + remainder);
    }
    if (digits.empty())
        digits = "0";
    std::reverse(digits.begin(), digits.end());
    if (scale > 0) {
        if (digits.size() <= static_cast<std::size_t>(scale))
            digits.insert(0, static_cast<std::size_t>(scale) - digits.size() + 1, '0');
        digits.insert(digits.size() - static_cast<std::size_t>(scale), ".");
    } else if (scale < 0 && digits != "0") {
        digits.append(static_cast<std::size_t>(-scale), '0');
    }
    return negative && digits.find_first_not_of("0.") != std::string::npos ? "-" + digits : digits;
}

std::string date_from_days(std::int64_t days) {
    bool bc = false;
    std::string text = date_text(days, bc);
    return bc ? text + " BC" : text;
}

std::optional<std::string> time_of_day(std::int64_t count, TimeUnit unit) {
    const std::int64_t unit_per_s = per_second(unit);
    // 24:00:00 is a valid PostgreSQL time (end of day), and MySQL's TIME can exceed it; what
    // PostgreSQL's time cannot take is refused here with a reason rather than in the COPY.
    if (count < 0 || count > 86400 * unit_per_s)
        return std::nullopt;
    std::int64_t seconds = count / unit_per_s;
    std::int64_t fraction = count % unit_per_s;
    std::int64_t micros = unit == TimeUnit::millis   ? fraction * 1000
                          : unit == TimeUnit::micros ? fraction
                                                     : fraction / 1000;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld.%06lld",
                  static_cast<long long>(seconds / 3600), static_cast<long long>(seconds / 60 % 60),
                  static_cast<long long>(seconds % 60), static_cast<long long>(micros));
    return std::string(buf);
}

std::string timestamp_from_epoch(std::int64_t count, TimeUnit unit) {
    const std::int64_t unit_per_s = per_second(unit);
    std::int64_t seconds = floor_div(count, unit_per_s);
    std::int64_t fraction = count - seconds * unit_per_s;
    std::int64_t micros = unit == TimeUnit::millis   ? fraction * 1000
                          : unit == TimeUnit::micros ? fraction
                                                     : fraction / 1000;
    std::int64_t days = floor_div(seconds, 86400);
    std::int64_t in_day = seconds - days * 86400;
    bool bc = false;
    std::string date = date_text(days, bc);
    char buf[64];
    std::snprintf(buf, sizeof buf, " %02lld:%02lld:%02lld.%06lld+00",
                  static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60),
                  static_cast<long long>(in_day % 60), static_cast<long long>(micros));
    return date + buf + (bc ? " BC" : "");
}

LogicalType logical_type_of(std::string_view name, std::string_view type) {
    if (name == "org.apache.kafka.connect.data.Decimal")
        return LogicalType::decimal;
    if (name == "io.debezium.data.VariableScaleDecimal")
        return LogicalType::variable_scale_decimal;
    if (name == "io.debezium.time.Date" || name == "org.apache.kafka.connect.data.Date")
        return LogicalType::date;
    if (name == "io.debezium.time.Time" || name == "org.apache.kafka.connect.data.Time")
        return LogicalType::time_millis;
    if (name == "io.debezium.time.MicroTime")
        return LogicalType::time_micros;
    if (name == "io.debezium.time.NanoTime")
        return LogicalType::time_nanos;
    if (name == "io.debezium.time.Timestamp" || name == "org.apache.kafka.connect.data.Timestamp")
        return LogicalType::timestamp_millis;
    if (name == "io.debezium.time.MicroTimestamp")
        return LogicalType::timestamp_micros;
    if (name == "io.debezium.time.NanoTimestamp")
        return LogicalType::timestamp_nanos;
    if (name == "io.debezium.time.MicroDuration")
        return LogicalType::micro_duration;
    if (name == "io.debezium.data.Json")
        return LogicalType::json;
    if (name.empty() && type == "bytes")
        return LogicalType::bytes;
    return LogicalType::none;
}

}  // namespace rmq2pg
