// Batch closing rules; see batch_policy.h.
#include "batch_policy.h"

#include <algorithm>

namespace rmq2pg {

void BatchPolicy::add(std::size_t message_bytes, Clock::time_point now) {
    add(message_bytes, now, now);
}

void BatchPolicy::add(std::size_t message_bytes, Clock::time_point now,
                      Clock::time_point arrived_by) {
    if (messages_ == 0)
        first_message_at_ = std::min(now, arrived_by);
    ++messages_;
    bytes_ += message_bytes;
}

void BatchPolicy::reset() {
    messages_ = 0;
    bytes_ = 0;
}

bool BatchPolicy::full() const {
    return messages_ > 0 && (messages_ >= limits_.max_messages || bytes_ >= limits_.max_bytes);
}

bool BatchPolicy::due(Clock::time_point now) const {
    return messages_ > 0 &&
           now - first_message_at_ >= std::chrono::milliseconds(limits_.max_delay_ms);
}

std::chrono::milliseconds BatchPolicy::wait_budget(Clock::time_point now,
                                                   std::chrono::milliseconds idle) const {
    if (messages_ == 0)
        return idle;
    auto deadline = first_message_at_ + std::chrono::milliseconds(limits_.max_delay_ms);
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    return std::max(left, std::chrono::milliseconds(0));
}

}  // namespace rmq2pg
