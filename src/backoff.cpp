// Backoff delays; see backoff.h.
#include "backoff.h"

#include <algorithm>

namespace rmq2pg {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::uint64_t seed)
    : initial_(initial), max_(std::max(max, initial)), random_(seed) {}

std::chrono::milliseconds Backoff::next_delay() {
    // 2^30 × initial overflows nothing in int64 milliseconds and is far past any sane max.
    int exponent = std::min(failures_, 30);
    ++failures_;
    std::int64_t capped = std::min<std::int64_t>(max_.count(), initial_.count() << exponent);
    std::int64_t half = capped / 2;
    std::uniform_int_distribution<std::int64_t> jitter(0, capped - half);
    return std::chrono::milliseconds(half + jitter(random_));
}

}  // namespace rmq2pg
