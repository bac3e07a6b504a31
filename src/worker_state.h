// The states of a worker's lifecycle, as logs, metrics, health checks and the status page name
// them. A worker moves between them (worker.cpp); everyone else only reads them.
#pragma once

namespace rmq2pg {

enum class WorkerState : int {
    starting,
    connecting,   // opening the broker or database connection
    consuming,    // receiving deliveries and filling a batch
    writing,      // a batch transaction is under way
    backing_off,  // waiting before a retry or reconnect
    paused,       // on_error: stop hit a poison message; waits for a restart
    standby,      // streams: holds none (every stream is another worker's share); renews
    stopped,
};

const char* to_string(WorkerState state);

}  // namespace rmq2pg
