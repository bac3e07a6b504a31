// Batch closing rules; see batch_policy.h.
#include "batch_policy.h"

#include <algorithm>

namespace rmq2pg {

namespace {

// A delivery read this soon after the write ended was already there: reading one that arrives
// later takes a wait of its own. (Reading one from rabbitmq-c's buffer takes microseconds.)
constexpr std::chrono::milliseconds kRightAfterWrite{1};

}  // namespace

void BatchPolicy::add(std::size_t message_bytes, Clock::time_point now, bool held) {
    if (messages_ == 0) {
        first_message_at_ = now;
        if (write_started_ && (held || now - write_ended_ <= kRightAfterWrite))
            first_message_at_ = std::min(now, *write_started_);
    }
    ++messages_;
    bytes_ += message_bytes;
}

void BatchPolicy::wrote(Clock::time_point started, Clock::time_point ended) {
    write_started_ = started;
    write_ended_ = ended;
}

void BatchPolicy::reset() {
    messages_ = 0;
    bytes_ = 0;
}

bool BatchPolicy::should_close(Clock::time_point now) const {
    if (messages_ == 0)
        return false;
    if (messages_ >= limits_.max_messages || bytes_ >= limits_.max_bytes)
        return true;
    return now - first_message_at_ >= std::chrono::milliseconds(limits_.max_delay_ms);
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
