// Days since 1970-01-01 → civil date, shared by the converters that write dates from day counts
// (Debezium's Date, protobuf's Timestamp).
#pragma once

#include <cstdint>

namespace rmq2pg {

// Howard Hinnant's days → civil date (proleptic Gregorian), exact for every int64 day count
// PostgreSQL can hold.
inline void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2 ? 1 : 0;
}

}  // namespace rmq2pg
