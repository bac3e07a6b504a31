// Liveness and readiness verdicts; see health.h.
#include "health.h"

#include <algorithm>

namespace rmq2pg {

std::chrono::milliseconds wedge_threshold(std::int64_t shutdown_timeout_ms) {
    return 2 * std::max(std::chrono::milliseconds(shutdown_timeout_ms),
                        std::chrono::milliseconds(std::chrono::seconds(60)));
}

namespace {

std::string worker_name(const WorkerReading& w) {
    return w.pipeline + "/" + std::to_string(w.index);
}

}  // namespace

HealthVerdict check_liveness(const std::vector<WorkerReading>& workers,
                             std::chrono::milliseconds threshold,
                             std::chrono::steady_clock::time_point now) {
    HealthVerdict verdict;
    for (const auto& w : workers) {
        if (w.state != WorkerState::consuming && w.state != WorkerState::writing &&
            w.state != WorkerState::standby)
            continue;
        auto still = std::chrono::duration_cast<std::chrono::seconds>(now - w.last_progress);
        if (now - w.last_progress > std::max(threshold, 2 * w.write_timeout)) {
            verdict.ok = false;
            verdict.reasons.push_back(worker_name(w) + " wedged: " + to_string(w.state) +
                                      " without progress for " + std::to_string(still.count()) +
                                      " s");
        }
    }
    return verdict;
}

HealthVerdict check_readiness(const std::vector<WorkerReading>& workers,
                              std::chrono::steady_clock::time_point now) {
    HealthVerdict verdict;
    for (const auto& w : workers) {
        if (w.state != WorkerState::consuming && w.state != WorkerState::writing &&
            w.state != WorkerState::standby) {
            verdict.ok = false;
            verdict.reasons.push_back(worker_name(w) + " is " + to_string(w.state));
        } else if (!w.database_connected) {
            verdict.ok = false;
            verdict.reasons.push_back(worker_name(w) + " has no PostgreSQL connection");
        } else if (w.writing_since && now - *w.writing_since > w.write_timeout) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - *w.writing_since);
            verdict.ok = false;
            verdict.reasons.push_back(worker_name(w) + " has been writing for " +
                                      std::to_string(ms.count()) +
                                      " ms, past postgres.write_timeout_ms");
        }
    }
    return verdict;
}

void check_stream_owners(const std::string& pipeline, const std::vector<std::string>& streams,
                         bool known, const std::vector<StreamReading>& readings,
                         HealthVerdict& verdict) {
    if (!known) {
        verdict.ok = false;
        verdict.reasons.push_back("pipeline '" + pipeline +
                                  "': the owners of its streams are not read yet");
        return;
    }
    for (const auto& stream : streams) {
        bool owned = false;
        for (const auto& r : readings)
            owned = owned || (r.stream == stream && r.leased && !r.owner.empty());
        if (!owned) {
            verdict.ok = false;
            verdict.reasons.push_back("pipeline '" + pipeline + "': stream '" + stream +
                                      "' has no owner in any instance");
        }
    }
}

}  // namespace rmq2pg
