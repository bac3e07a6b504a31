// RFC 3339 UTC timestamps; see rfc3339.h.
#include "rfc3339.h"

#include <cstdio>
#include <ctime>

namespace rmq2pg {

std::string rfc3339(std::chrono::system_clock::time_point at, bool milliseconds) {
    auto since_epoch = at.time_since_epoch();
    std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char buf[80];  // ample for any int the compiler imagines in tm
    if (milliseconds) {
        int millis = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000);
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    } else {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    return buf;
}

}  // namespace rmq2pg
