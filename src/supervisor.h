// Starts every pipeline's workers, reports progress, and stops them within the shutdown timeout.
// Runs on the main thread; workers run on their own threads and share only StopSignal and
// PipelineMetrics with it.
#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "config.h"
#include "health.h"
#include "metrics.h"
#include "worker.h"

namespace rmq2pg {

class Supervisor {
  public:
    explicit Supervisor(Config config);
    ~Supervisor();

    void start();
    // True when every worker of every pipeline is consuming (the readiness condition).
    bool all_consuming() const;
    // Logs rates since the previous call, one line per pipeline.
    void log_progress();
    // Asks every worker to finish its batch and stop; returns false if some did not stop within
    // shutdown_timeout_ms (their unacked messages return to the queue when the process exits).
    bool stop();
    // After stop(): some worker gave up on messages it could not commit in time.
    bool abandoned_work() const { return stop_.abandoned.load(); }

    // Read-only views for the reporters (HTTP server, status sampler, systemd status) on other
    // threads: configs are immutable, metrics and worker readings are atomics. Valid for the
    // Supervisor's lifetime.
    struct PipelineView {
        const PipelineConfig* config;
        const PipelineMetrics* metrics;
        std::vector<const Worker*> workers;  // position = worker index
    };
    std::vector<PipelineView> pipelines() const;
    std::vector<WorkerReading> worker_readings() const;
    const Config& config() const { return config_; }

  private:
    struct Pipeline {
        const PipelineConfig* config;
        PipelineMetrics metrics;
        std::vector<std::unique_ptr<Worker>> workers;
        std::uint64_t last_committed = 0;
    };
    Config config_;
    StopSignal stop_;
    std::vector<std::unique_ptr<Pipeline>> pipelines_;
    std::vector<std::thread> threads_;
    std::chrono::steady_clock::time_point last_progress_;
};

}  // namespace rmq2pg
