// Why a pipeline dead-lettered messages lately: reason groups (dead_letter_reasons.h) counted in
// one-minute buckets over the last hour, for the status page. Only the folded reason text is
// kept, never a value or a body. Workers add, the HTTP server reads: `lock_` is the one lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rmq2pg {

class RecentReasons {
  public:
    using Clock = std::chrono::system_clock;
    static constexpr std::chrono::minutes kWindow{60};
    // Distinct groups remembered per minute: a storm of ever-new reasons (a bug that puts a
    // counter into the text) must not grow memory; the rest count as "(other reasons)".
    static constexpr std::size_t kMaxGroupsPerMinute = 32;

    struct Entry {
        std::string reason;  // the group
        std::uint64_t count = 0;
    };

    // Counts one dead letter with `reason` (as written in x-rmq2pg-error) at `now`.
    void add(const std::string& reason, Clock::time_point now);
    // The `limit` most frequent groups within kWindow of `now`, most frequent first.
    std::vector<Entry> top(std::size_t limit, Clock::time_point now) const;

  private:
    struct Minute {
        std::int64_t minute = 0;  // minutes since the epoch
        std::vector<Entry> groups;
    };
    mutable std::mutex lock_;
    std::deque<Minute> minutes_;  // oldest first, at most kWindow of them
};

}  // namespace rmq2pg
