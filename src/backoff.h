// Exponential backoff with jitter for reconnects and batch retries (cppkafka's backoff_performer
// idea, minus the performing). Pure: the random source is seeded by the caller, so tests are exact.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace rmq2pg {

class Backoff {
  public:
    Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::uint64_t seed);

    // The delay before the next attempt: initial × 2^failures, capped at max, then "equal
    // jitter" (half fixed, half random) so a fleet of workers does not retry in lockstep.
    std::chrono::milliseconds next_delay();
    void reset() { failures_ = 0; }
    int failures() const { return failures_; }

  private:
    std::chrono::milliseconds initial_;
    std::chrono::milliseconds max_;
    int failures_ = 0;
    std::mt19937_64 random_;
};

}  // namespace rmq2pg
