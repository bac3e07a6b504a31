// Liveness and readiness verdicts (for /healthz, /readyz and the systemd watchdog), from each
// worker's state and last-progress time. Pure: handed the workers' readings and "now".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "metrics.h"
#include "stream_offsets.h"

namespace rmq2pg {

struct WorkerReading {
    std::string pipeline;
    int index = 0;
    WorkerState state = WorkerState::starting;
    std::chrono::steady_clock::time_point last_progress;
    // Since when the PostgreSQL call under way (connect or batch write) started, if one is.
    std::optional<std::chrono::steady_clock::time_point> writing_since;
    bool database_connected = true;
    // postgres.write_timeout_ms: a write is cut at this deadline.
    std::chrono::milliseconds write_timeout{30000};
};

struct HealthVerdict {
    bool ok = true;
    std::vector<std::string> reasons;  // one per worker that fails the check
};

// How long a worker's loop may stand still in consuming or writing before it counts as wedged:
// 2 × max(shutdown_timeout, 60 s), and never less than 2 × the worker's write deadline. A
// consuming worker turns its loop at least every 200 ms even when idle, and every PostgreSQL
// call is cut at postgres.write_timeout_ms by the worker's write guard, so this only trips on a
// thread blocked for good (a bug, a deadlock), never on a slow but moving one.
std::chrono::milliseconds wedge_threshold(std::int64_t shutdown_timeout_ms);

// Alive unless some worker is wedged: the only state a restart fixes. Backing off, connecting,
// paused, a database that does not answer: those are the daemon handling an outage as designed,
// which a restart would not fix (readiness reports them).
HealthVerdict check_liveness(const std::vector<WorkerReading>& workers,
                             std::chrono::milliseconds threshold,
                             std::chrono::steady_clock::time_point now);

// Ready when every worker of every pipeline is consuming (or writing a batch), holds a
// PostgreSQL connection, and has not been writing for longer than its write deadline.
HealthVerdict check_readiness(
    const std::vector<WorkerReading>& workers,
    std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

// Streams: ready when every stream of `streams` has a live lease somewhere (any instance), as
// rmq2pg_state last read (`known` false: not read yet, which is not ready). Adds one reason per
// stream without an owner to `verdict`.
void check_stream_owners(const std::string& pipeline, const std::vector<std::string>& streams,
                         bool known, const std::vector<StreamReading>& readings,
                         HealthVerdict& verdict);

}  // namespace rmq2pg
