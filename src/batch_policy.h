// When a batch closes: at max_messages, at max_bytes, or max_delay_ms after its first message,
// whichever comes first. Pure policy: it is handed "now" and never reads a clock itself.
#pragma once

#include <chrono>
#include <cstddef>

#include "config.h"

namespace rmq2pg {

class BatchPolicy {
  public:
    using Clock = std::chrono::steady_clock;

    explicit BatchPolicy(const BatchLimits& limits) : limits_(limits) {}

    void add(std::size_t message_bytes, Clock::time_point now);
    void reset();

    // The batch must be written now: full by count or bytes, or its delay has passed.
    bool should_close(Clock::time_point now) const;
    // How long the consumer may wait for the next message before the batch is due; `idle` when
    // the batch is empty (nothing is due then).
    std::chrono::milliseconds wait_budget(Clock::time_point now,
                                          std::chrono::milliseconds idle) const;

    std::size_t messages() const { return messages_; }
    std::size_t bytes() const { return bytes_; }
    bool empty() const { return messages_ == 0; }

  private:
    BatchLimits limits_;
    std::size_t messages_ = 0;
    std::size_t bytes_ = 0;
    Clock::time_point first_message_at_{};
};

}  // namespace rmq2pg
