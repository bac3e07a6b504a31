// RFC 3339 UTC timestamps as rmq2pg writes them (status JSON, JSON logs, dead-letter headers).
#pragma once

#include <chrono>
#include <string>

namespace rmq2pg {

// "2024-05-01T12:00:00Z", or with `milliseconds` "2024-05-01T12:00:00.123Z".
std::string rfc3339(std::chrono::system_clock::time_point at, bool milliseconds = false);

}  // namespace rmq2pg
