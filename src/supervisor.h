// Starts every pipeline's workers, reports progress, applies a reloaded config (SIGHUP) and stops
// the workers within the shutdown timeout. Runs on the main thread; workers run on their own
// threads and share only their pipeline's StopSignal and PipelineMetrics with it.
//
// Reload: each pipeline owns its StopSignal, so one pipeline can be drained (open batches
// committed and acked, exactly as on SIGTERM) while the others keep running. A pipeline keeps a
// shared_ptr to the Config its PipelineConfig lives in, so its workers' `const Config&` and
// `const PipelineConfig&` stay valid until they have stopped, however many reloads happen
// meanwhile. The reporters (HTTP server, status sampler) run on other threads and copy what
// they read under `lock_`; their views hold the pipeline alive while they use it.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "amqp_hub.h"
#include "config.h"
#include "health.h"
#include "metrics.h"
#include "pg_pool.h"
#include "worker.h"

namespace rmq2pg {

class Supervisor {
  public:
    explicit Supervisor(Config config);
    ~Supervisor();

    void start();
    // Applies a config read again (SIGHUP), on the main thread: pipelines whose settings changed
    // are drained and restarted with the new ones, removed ones are drained, new ones start,
    // unchanged ones keep running untouched. A change of the connection settings (amqp,
    // postgres, retry, exchanges) restarts every pipeline. Blocks while the drained pipelines
    // finish, at most shutdown_timeout_ms.
    void reload(Config config);
    // True when every worker of every pipeline is consuming (the readiness condition).
    bool all_consuming() const;
    // Logs rates since the previous call, one line per pipeline.
    void log_progress();
    // Asks every worker to finish its batch and stop; returns false if some did not stop within
    // shutdown_timeout_ms (their unacked messages return to the queue when the process exits).
    bool stop();
    // After stop(): some worker gave up on messages it could not commit in time.
    bool abandoned_work() const { return abandoned_; }

    // Read-only views for the reporters (HTTP server, status sampler, systemd status) on other
    // threads: configs are immutable, metrics and worker readings are atomics. The pointers stay
    // valid while the view (its `keep_alive`) exists, even if a reload replaced the pipeline.
    struct PipelineView {
        std::shared_ptr<const void> keep_alive;  // the pipeline the pointers below point into
        const PipelineConfig* config;
        const PipelineMetrics* metrics;
        std::vector<const Worker*> workers;  // position = worker index
    };
    std::vector<PipelineView> pipelines() const;
    std::vector<WorkerReading> worker_readings() const;
    // The config in force (the latest one applied by reload()).
    std::shared_ptr<const Config> config() const;
    // The PostgreSQL pool the workers share (postgres.pool_size), or null when each worker has a
    // connection of its own (uses_pg_pool()). Its readings are atomics or take its own lock.
    std::shared_ptr<const PgPool> pg_pool() const;
    // The shared AMQP connections the queue workers consume on (amqp.connections; hub_plan.h),
    // empty when each worker has a connection of its own. Their readings are atomics.
    std::vector<std::shared_ptr<const AmqpHub>> amqp_hubs() const;

  private:
    struct Pipeline {
        std::shared_ptr<const Config> owner;  // the Config that holds *config
        const PipelineConfig* config = nullptr;
        // Shared with the pipeline of the same name that a reload restarts: counters continue.
        std::shared_ptr<PipelineMetrics> metrics;
        // The pool its workers borrow from (null: a connection each); outlives the workers.
        std::shared_ptr<PgPool> pool;
        StopSignal stop;
        std::vector<std::unique_ptr<Worker>> workers;
        std::vector<std::thread> threads;  // main thread only
        std::uint64_t last_committed = 0;  // main thread only (log_progress)

        // Every worker stopped, or none ever started (a Supervisor that was never start()ed).
        bool finished() const;
    };
    using PipelinePtr = std::shared_ptr<Pipeline>;

    // `hubs`: the shared AMQP connections its queue workers take in turn, from `next_hub` on.
    static PipelinePtr make_pipeline(const std::shared_ptr<const Config>& owner,
                                     const PipelineConfig& config,
                                     std::shared_ptr<PipelineMetrics> metrics,
                                     std::shared_ptr<PgPool> pool,
                                     const std::vector<std::shared_ptr<AmqpHub>>& hubs,
                                     std::size_t& next_hub);
    // The shared AMQP connections `config` asks for (hub_plan.h), connecting in the background.
    static std::vector<std::shared_ptr<AmqpHub>> make_hubs(
        const std::shared_ptr<const Config>& config);
    // The pool `config` needs, or null (uses_pg_pool()).
    static std::shared_ptr<PgPool> make_pool(const Config& config);
    static void start_workers(Pipeline& pipeline);
    // Requests stop from every worker of `pipelines` and waits up to `timeout`; joins the threads
    // of the pipelines that stopped. Returns the pipelines that did not stop in time.
    static std::vector<PipelinePtr> drain(const std::vector<PipelinePtr>& pipelines,
                                          std::chrono::milliseconds timeout);

    // Guards config_, pipelines_ and pool_. The main thread replaces them (reload) under it and
    // reads them without it (it is their only writer); HTTP handler threads and the status sampler
    // thread copy them under it (pipelines(), worker_readings(), config()). Never held while
    // waiting for workers.
    mutable std::mutex lock_;
    std::shared_ptr<const Config> config_;
    std::vector<PipelinePtr> pipelines_;
    std::shared_ptr<PgPool> pool_;
    // Each worker's endpoints hold its hub too, so a hub outlives the workers that use it.
    std::vector<std::shared_ptr<AmqpHub>> hubs_;

    // Main thread only.
    std::size_t next_hub_ = 0;  // the hub the next queue worker takes
    // Drained pipelines whose workers missed the shutdown timeout on a reload: kept (their
    // threads unjoined) so those workers never point into freed memory; stop() waits for them.
    std::vector<PipelinePtr> stragglers_;
    bool started_ = false;
    bool abandoned_ = false;
    std::chrono::steady_clock::time_point last_progress_;
};

}  // namespace rmq2pg
