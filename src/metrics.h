// Counters shared between the workers of a pipeline and whoever reports them. The only mutable
// state workers share: every field is an atomic (LastError and RecentReasons aside: each has one
// named lock), written by workers, read by the reporters (progress log, HTTP server, systemd
// status).
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "recent_reasons.h"
#include "worker_state.h"

namespace rmq2pg {

// A Prometheus-style histogram with fixed upper bounds: one atomic counter per bucket, so workers
// record without a lock and a reader sees each bucket monotonic (not all buckets of one instant,
// which Prometheus tolerates). Bounds are chosen at construction and never change.
class Histogram {
  public:
    static constexpr std::size_t kMaxBuckets = 16;

    struct Snapshot {
        std::vector<double> bounds;         // upper bounds, ascending; +Inf is implicit
        std::vector<std::uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1
        double sum = 0;
        std::uint64_t count = 0;

        // Like PromQL histogram_quantile(): linear inside the bucket that holds the rank; the
        // +Inf bucket answers with the highest finite bound. Nullopt when nothing was observed.
        std::optional<double> quantile(double q) const {
            if (count == 0)
                return std::nullopt;
            double rank = q * static_cast<double>(count);
            std::uint64_t below = 0;
            for (std::size_t i = 0; i < counts.size(); ++i) {
                if (static_cast<double>(below + counts[i]) >= rank && counts[i] > 0) {
                    if (i == bounds.size())
                        return bounds.empty() ? 0.0 : bounds.back();
                    double lower = i == 0 ? 0.0 : bounds[i - 1];
                    double within =
                        (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
                    return lower + (bounds[i] - lower) * within;
                }
                below += counts[i];
            }
            return bounds.empty() ? 0.0 : bounds.back();
        }
        // The observations made between `earlier` and this snapshot (same histogram).
        Snapshot since(const Snapshot& earlier) const {
            Snapshot d = *this;
            if (earlier.counts.size() != counts.size())
                return d;
            for (std::size_t i = 0; i < counts.size(); ++i)
                d.counts[i] -= earlier.counts[i];
            d.sum -= earlier.sum;
            d.count -= earlier.count;
            return d;
        }
    };

    explicit Histogram(std::initializer_list<double> bounds) : bounds_(bounds) {
        assert(bounds_.size() < kMaxBuckets);
    }

    void observe(double value) {
        std::size_t i = 0;
        while (i < bounds_.size() && value > bounds_[i])
            ++i;
        buckets_[i].fetch_add(1, std::memory_order_relaxed);
        // std::atomic<double> has no fetch_add before C++20.
        double sum = sum_.load(std::memory_order_relaxed);
        while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
        }
    }

    Snapshot snapshot() const {
        Snapshot s;
        s.bounds = bounds_;
        for (std::size_t i = 0; i <= bounds_.size(); ++i) {
            s.counts.push_back(buckets_[i].load(std::memory_order_relaxed));
            s.count += s.counts.back();
        }
        s.sum = sum_.load(std::memory_order_relaxed);
        return s;
    }

  private:
    const std::vector<double> bounds_;  // at most kMaxBuckets - 1
    std::array<std::atomic<std::uint64_t>, kMaxBuckets> buckets_{};
    std::atomic<double> sum_{0};
};

// The text and time of a pipeline's most recent error, for /api/status. Workers write it where
// they log an error; the HTTP server reads it. `lock_` is the only lock: held for a string copy.
class LastError {
  public:
    struct Value {
        std::string text;  // empty: no error yet
        std::chrono::system_clock::time_point at;
    };
    void set(std::string text) {
        std::lock_guard<std::mutex> guard(lock_);
        value_.text = std::move(text);
        value_.at = std::chrono::system_clock::now();
    }
    Value get() const {
        std::lock_guard<std::mutex> guard(lock_);
        return value_;
    }

  private:
    mutable std::mutex lock_;  // workers of the pipeline (set) and the HTTP server (get)
    Value value_;
};

struct PipelineMetrics {
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> committed{0};
    std::atomic<std::uint64_t> dead_lettered{0};
    std::atomic<std::uint64_t> rejected{0};
    std::atomic<std::uint64_t> redelivered{0};
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> write_failures{0};
    std::atomic<std::uint64_t> amqp_connects{0};
    std::atomic<std::uint64_t> pg_connects{0};
    std::atomic<std::uint64_t> lease_changes{0};  // streams: leases taken, lost or released
    // Body fields that no column takes (columns by name), and change-event tombstones and
    // ignored truncates (format: debezium): acknowledged without a row.
    std::atomic<std::uint64_t> unmapped_fields{0};
    std::atomic<std::uint64_t> skipped_events{0};
    std::atomic<bool> unmapped_logged{false};  // the first unmapped field name is logged once

    // Why these buckets: batches run from a handful of messages (idle trickle) to max_messages
    // (at most a few thousand); a commit takes about a millisecond on a local server and seconds
    // when the database struggles; the AMQP timestamp has one-second resolution, so end-to-end
    // latency starts at 1 s and reaches an hour of backlog.
    Histogram batch_size{1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
    Histogram commit_seconds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                             0.25,  0.5,    1,     2.5,  5,     10};
    Histogram latency_seconds{1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
    LastError last_error;
    RecentReasons dead_letter_reasons;  // what was dead-lettered in the last hour, and why
};

}  // namespace rmq2pg
