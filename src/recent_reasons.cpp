// Dead-letter reasons of the last hour; see recent_reasons.h.
#include "recent_reasons.h"

#include <algorithm>
#include <map>

#include "dead_letter_reasons.h"

namespace rmq2pg {

namespace {

std::int64_t minute_of(RecentReasons::Clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::minutes>(at.time_since_epoch()).count();
}

constexpr const char* kOther = "(other reasons)";

}  // namespace

void RecentReasons::add(const std::string& reason, Clock::time_point now) {
    std::string group = reason_group(reason);  // before the lock: it copies the text
    const std::int64_t minute = minute_of(now);
    std::lock_guard<std::mutex> guard(lock_);
    if (minutes_.empty() || minutes_.back().minute < minute)
        minutes_.push_back(Minute{minute, {}});
    while (!minutes_.empty() && minutes_.front().minute <= minute - kWindow.count())
        minutes_.pop_front();
    auto& groups = minutes_.back().groups;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Entry& e) { return e.reason == group; });
    if (it == groups.end() && groups.size() >= kMaxGroupsPerMinute)
        it = std::find_if(groups.begin(), groups.end(),
                          [](const Entry& e) { return e.reason == kOther; });
    if (it == groups.end()) {
        groups.push_back(Entry{groups.size() >= kMaxGroupsPerMinute ? kOther : group, 0});
        it = groups.end() - 1;
    }
    ++it->count;
}

std::vector<RecentReasons::Entry> RecentReasons::top(std::size_t limit,
                                                     Clock::time_point now) const {
    const std::int64_t minute = minute_of(now);
    std::map<std::string, std::uint64_t> sums;
    {
        std::lock_guard<std::mutex> guard(lock_);
        for (const auto& m : minutes_)
            if (m.minute > minute - kWindow.count())
                for (const auto& e : m.groups)
                    sums[e.reason] += e.count;
    }
    std::vector<Entry> out;
    for (auto& [reason, count] : sums)
        out.push_back(Entry{reason, count});
    std::stable_sort(out.begin(), out.end(),
                     [](const Entry& a, const Entry& b) { return a.count > b.count; });
    if (out.size() > limit)
        out.resize(limit);
    return out;
}

}  // namespace rmq2pg
