// When a batch closes: at max_messages, at max_bytes, or max_delay_ms after its first message
// arrived, whichever comes first. Pure policy: it is handed the time points and never reads a
// clock itself.
#pragma once

#include <chrono>
#include <cstddef>

#include "config.h"

namespace rmq2pg {

class BatchPolicy {
  public:
    using Clock = std::chrono::steady_clock;

    explicit BatchPolicy(const BatchLimits& limits) : limits_(limits) {}

    // `arrived_by`: the latest the message can have arrived (a message found already waiting
    // may have come at any moment since reading stopped); the batch's delay counts from its
    // first message's.
    void add(std::size_t message_bytes, Clock::time_point now);
    void add(std::size_t message_bytes, Clock::time_point now, Clock::time_point arrived_by);
    void reset();

    // The batch must be written now: full by count or bytes, or its delay has passed.
    bool should_close(Clock::time_point now) const { return full() || due(now); }
    bool full() const;
    // Its delay has passed: what is already waiting may still join it, nothing is waited for.
    bool due(Clock::time_point now) const;
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
