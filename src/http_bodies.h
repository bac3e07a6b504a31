// The bodies of /metrics (Prometheus text, metrics_text.cpp) and /api/status (JSON,
// status_json.cpp), apart from the transport (http_server.cpp) so the unit tests can read them.
#pragma once

#include <chrono>
#include <string>

#include "status_sampler.h"
#include "supervisor.h"

namespace rmq2pg {

// Each body is built from Supervisor::pipelines() (atomics), Supervisor::worker_readings() and
// StatusSampler::snapshot() (a copy under the sampler's lock), so a slow scrape never slows a
// worker.
std::string render_metrics(const Supervisor& supervisor, const StatusSampler& sampler);
std::string render_status(const Supervisor& supervisor, const StatusSampler& sampler);

// When the process started (static initialisation; inline, so both bodies read the same one):
// /metrics' rmq2pg_start_time_seconds and /api/status' uptime_s.
inline const auto kProcessStart = std::chrono::system_clock::now();

inline double epoch_seconds(std::chrono::system_clock::time_point at) {
    return std::chrono::duration<double>(at.time_since_epoch()).count();
}

}  // namespace rmq2pg
