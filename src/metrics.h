// Counters shared between the workers of a pipeline and whoever reports them. The only mutable
// state workers share: every field is an atomic, written by workers, read by the reporter.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace rmq2pg {

enum class WorkerState : int {
    starting,
    connecting,   // opening the broker or database connection
    consuming,    // receiving deliveries and filling a batch
    writing,      // a batch transaction is under way
    backing_off,  // waiting before a retry or reconnect
    paused,       // on_error: stop hit a poison message; waits for a restart
    stopped,
};

const char* to_string(WorkerState state);

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
};

}  // namespace rmq2pg
