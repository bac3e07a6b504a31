// Liveness and readiness verdicts (for /healthz, /readyz and the systemd watchdog), from each
// worker's state and last-progress time. Pure: handed the workers' readings and "now".
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "metrics.h"

namespace rmq2pg {

struct WorkerReading {
    std::string pipeline;
    int index = 0;
    WorkerState state = WorkerState::starting;
    std::chrono::steady_clock::time_point last_progress;
};

struct HealthVerdict {
    bool ok = true;
    std::vector<std::string> reasons;  // one per worker that fails the check
};

// How long a worker's loop may stand still in consuming or writing before it counts as wedged:
// 2 × max(shutdown_timeout, 60 s). A consuming worker turns its loop at least every 200 ms even
// when idle, and a write is bounded by the database's own timeouts, so this only trips on a
// thread blocked for good (a hung socket, a deadlock), never on a slow but moving one.
std::chrono::milliseconds wedge_threshold(std::int64_t shutdown_timeout_ms);

// Alive unless some worker is wedged. Backing off, connecting or paused are not wedged: those
// states are the daemon handling an outage as designed, which a restart would not fix.
HealthVerdict check_liveness(const std::vector<WorkerReading>& workers,
                             std::chrono::milliseconds threshold,
                             std::chrono::steady_clock::time_point now);

// Ready when every worker of every pipeline is consuming (or writing a batch).
HealthVerdict check_readiness(const std::vector<WorkerReading>& workers);

}  // namespace rmq2pg
