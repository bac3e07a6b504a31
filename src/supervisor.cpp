// Worker pool lifecycle and reload; see supervisor.h.
#include "supervisor.h"

#include <malloc.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "hub_plan.h"

namespace rmq2pg {

bool Supervisor::Pipeline::finished() const {
    return threads.empty() || std::all_of(workers.begin(), workers.end(), [](const auto& w) {
               return w->state() == WorkerState::stopped;
           });
}

Supervisor::PipelinePtr Supervisor::make_pipeline(const std::shared_ptr<const Config>& owner,
                                                  const PipelineConfig& config,
                                                  std::shared_ptr<PipelineMetrics> metrics,
                                                  std::shared_ptr<PgPool> pool,
                                                  const std::vector<std::shared_ptr<AmqpHub>>& hubs,
                                                  std::size_t& next_hub) {
    auto pipeline = std::make_shared<Pipeline>();
    pipeline->pool = std::move(pool);
    pipeline->owner = owner;
    pipeline->config = &config;
    pipeline->metrics = metrics ? std::move(metrics) : std::make_shared<PipelineMetrics>();
    pipeline->last_committed = pipeline->metrics->committed.load();
    bool shared_amqp = !hubs.empty() && !config.is_stream();
    for (int i = 0; i < config.workers; ++i) {
        std::unique_ptr<BrokerEndpoints> endpoints;
        if (pipeline->pool)
            endpoints = std::make_unique<PooledEndpoints>(*owner, config, i, pipeline->pool);
        else if (shared_amqp)
            endpoints = std::make_unique<BrokerEndpoints>(*owner, config, i);
        if (shared_amqp)
            endpoints->use_hub(hubs[next_hub++ % hubs.size()]);
        pipeline->workers.push_back(std::make_unique<Worker>(
            *owner, config, i, pipeline->stop, *pipeline->metrics, std::move(endpoints)));
    }
    return pipeline;
}

std::vector<std::shared_ptr<AmqpHub>> Supervisor::make_hubs(
    const std::shared_ptr<const Config>& config) {
    std::vector<std::shared_ptr<AmqpHub>> hubs;
    int count = hub_count(*config);
    if (count == 0)
        return hubs;
    spdlog::info(
        "{} queue workers consume on {} shared AMQP connection(s) (amqp.connections {}), one "
        "channel each",
        queue_workers(*config), count,
        config->amqp_connections == 0 ? std::string("automatic")
                                      : std::to_string(config->amqp_connections));
    for (int i = 0; i < count; ++i)
        hubs.push_back(std::make_shared<AmqpHub>(config, i));
    return hubs;
}

std::shared_ptr<PgPool> Supervisor::make_pool(const Config& config) {
    if (!uses_pg_pool(config))
        return nullptr;
    int workers = 0;
    for (const auto& p : config.pipelines)
        workers += p.workers;
    spdlog::info(
        "{} workers share a pool of {} PostgreSQL connections (postgres.pool_size); each "
        "borrows one per batch, {} kept for pipelines holding none (postgres.pool_reserve)",
        workers, config.postgres_pool_size,
        std::min(config.postgres_pool_reserve, config.postgres_pool_size - 1));
    return std::make_shared<PgPool>(PgConnectionSettings::of(config, "rmq2pg/pool"),
                                    static_cast<std::size_t>(config.postgres_pool_size),
                                    static_cast<std::size_t>(config.postgres_pool_reserve));
}

void Supervisor::start_workers(Pipeline& pipeline) {
    for (auto& worker : pipeline.workers)
        pipeline.threads.emplace_back([w = worker.get()] { w->run(); });
}

Supervisor::Supervisor(Config config)
    : config_(std::make_shared<const Config>(std::move(config))),
      pool_(make_pool(*config_)),
      hubs_(make_hubs(config_)) {
    for (const auto& p : config_->pipelines)
        pipelines_.push_back(make_pipeline(config_, p, nullptr, pool_, hubs_, next_hub_));
}

Supervisor::~Supervisor() {
    if (started_)
        stop();
}

void Supervisor::start() {
    // glibc raises its mmap threshold to the size of each freed large block (up to 32 MiB), so
    // after one big message later allocations of that size come from heaps that never shrink.
    // A fixed threshold keeps every block of 1 MiB and more in its own mapping, returned to the
    // kernel when freed: RSS goes back near its baseline after a big message. The per-message
    // path allocates far below it.
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    last_progress_ = std::chrono::steady_clock::now();
    started_ = true;
    for (auto& pipeline : pipelines_)
        start_workers(*pipeline);
}

void Supervisor::reload(Config config) {
    auto next = std::make_shared<const Config>(std::move(config));
    // Only the main thread writes config_ and pipelines_: reading them here needs no lock.
    const Config& current = *config_;
    // Going from a connection per worker to the pool (or back) moves every worker's writes.
    bool reconnect = next->connection_fingerprint != current.connection_fingerprint ||
                     uses_pg_pool(*next) != uses_pg_pool(current);
    if (reconnect)
        spdlog::info(
            "reload: connection settings (amqp, postgres, retry or exchanges) changed: "
            "restarting every pipeline");
    // These are read once at start; applying them would mean rebinding or re-creating sinks.
    if (next->http.listen != current.http.listen)
        spdlog::warn("reload: http.listen changed: takes effect at the next restart");
    if (next->log_level != current.log_level || next->log_format != current.log_format)
        spdlog::warn("reload: log settings changed: take effect at the next restart");

    auto find_new = [&](const std::string& name) -> const PipelineConfig* {
        for (const auto& p : next->pipelines)
            if (p.name == name)
                return &p;
        return nullptr;
    };
    std::vector<PipelinePtr> drained, kept;
    for (const auto& pipeline : pipelines_) {
        const PipelineConfig* replacement = find_new(pipeline->config->name);
        if (!replacement) {
            spdlog::info("reload: pipeline '{}' removed: draining its {} worker(s)",
                         pipeline->config->name, pipeline->workers.size());
            drained.push_back(pipeline);
        } else if (reconnect || replacement->fingerprint != pipeline->config->fingerprint) {
            if (!reconnect)
                spdlog::info("reload: pipeline '{}' changed: draining its {} worker(s)",
                             pipeline->config->name, pipeline->workers.size());
            drained.push_back(pipeline);
        } else {
            spdlog::info("reload: pipeline '{}' unchanged: its workers keep running",
                         pipeline->config->name);
            kept.push_back(pipeline);
        }
    }

    auto timeout = std::chrono::milliseconds(next->shutdown_timeout_ms);
    auto late = drain(drained, timeout);
    for (const auto& pipeline : drained) {
        bool stopped = std::find(late.begin(), late.end(), pipeline) == late.end();
        if (!stopped)
            spdlog::error(
                "reload: pipeline '{}': some workers did not stop within {} ms; they are left "
                "to finish on their own (what they hold unacked returns to the queue)",
                pipeline->config->name, timeout.count());
        else if (pipeline->stop.abandoned.load())
            spdlog::error(
                "reload: pipeline '{}' drained; some messages could not be committed in time "
                "and were left unacked (they return to the queue)",
                pipeline->config->name);
        else
            spdlog::info("reload: pipeline '{}' drained", pipeline->config->name);
    }
    stragglers_.insert(stragglers_.end(), late.begin(), late.end());
    // Every pipeline was drained when the connections changed: a new pool for the new settings
    // (stragglers keep the old one alive until they stop).
    std::shared_ptr<PgPool> pool = reconnect ? make_pool(*next) : pool_;
    // The same for the shared AMQP connections; unchanged settings keep them, and the pipelines
    // a reload adds take channels on them.
    std::vector<std::shared_ptr<AmqpHub>> hubs = reconnect ? make_hubs(next) : hubs_;

    // The new list, in the new file's order: kept pipelines as they are, the others new.
    std::vector<PipelinePtr> next_pipelines, started;
    for (const auto& p : next->pipelines) {
        auto same_name = [&](const PipelinePtr& x) { return x->config->name == p.name; };
        if (auto it = std::find_if(kept.begin(), kept.end(), same_name); it != kept.end()) {
            next_pipelines.push_back(*it);
            continue;
        }
        std::shared_ptr<PipelineMetrics> metrics;
        if (auto it = std::find_if(drained.begin(), drained.end(), same_name); it != drained.end())
            metrics = (*it)->metrics;
        spdlog::info("reload: pipeline '{}' {}: queue '{}' -> table {}, {} worker(s), mode {}",
                     p.name, metrics ? "restarting with the new settings" : "added", p.queue,
                     p.qualified_table(), p.workers, to_string(p.mode));
        next_pipelines.push_back(make_pipeline(next, p, std::move(metrics), pool, hubs, next_hub_));
        started.push_back(next_pipelines.back());
    }
    {
        std::lock_guard<std::mutex> guard(lock_);
        config_ = next;
        pipelines_ = std::move(next_pipelines);
        pool_ = pool;
        hubs_ = hubs;
    }
    // Readers that copied a drained pipeline before the swap still hold it alive; its threads
    // are joined (or it is a straggler), so releasing our reference here is safe.
    if (started_)
        for (const auto& pipeline : started)
            start_workers(*pipeline);
    spdlog::info("reload: {} pipeline(s) kept, {} drained, {} started", kept.size(), drained.size(),
                 started.size());
}

bool Supervisor::all_consuming() const {
    for (const auto& pipeline : pipelines_)
        for (const auto& worker : pipeline->workers) {
            WorkerState s = worker->state();
            if (s != WorkerState::consuming && s != WorkerState::writing &&
                s != WorkerState::standby)
                return false;
        }
    return true;
}

std::vector<Supervisor::PipelineView> Supervisor::pipelines() const {
    std::lock_guard<std::mutex> guard(lock_);
    std::vector<PipelineView> views;
    for (const auto& pipeline : pipelines_) {
        PipelineView view{pipeline, pipeline->config, pipeline->metrics.get(), {}};
        for (const auto& worker : pipeline->workers)
            view.workers.push_back(worker.get());
        views.push_back(std::move(view));
    }
    return views;
}

std::vector<WorkerReading> Supervisor::worker_readings() const {
    std::lock_guard<std::mutex> guard(lock_);
    std::vector<WorkerReading> readings;
    for (const auto& pipeline : pipelines_)
        for (std::size_t i = 0; i < pipeline->workers.size(); ++i) {
            const Worker& worker = *pipeline->workers[i];
            WorkerReading reading;
            reading.pipeline = pipeline->config->name;
            reading.index = static_cast<int>(i);
            reading.state = worker.state();
            reading.last_progress = worker.last_progress();
            reading.writing_since = worker.writing_since();
            reading.database_connected = worker.database_connected();
            reading.write_timeout =
                std::chrono::milliseconds(pipeline->owner->postgres_write_timeout_ms);
            readings.push_back(std::move(reading));
        }
    return readings;
}

std::shared_ptr<const Config> Supervisor::config() const {
    std::lock_guard<std::mutex> guard(lock_);
    return config_;
}

std::shared_ptr<const PgPool> Supervisor::pg_pool() const {
    std::lock_guard<std::mutex> guard(lock_);
    return pool_;
}

std::vector<std::shared_ptr<const AmqpHub>> Supervisor::amqp_hubs() const {
    std::lock_guard<std::mutex> guard(lock_);
    return {hubs_.begin(), hubs_.end()};
}

void Supervisor::log_progress() {
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_progress_).count();
    last_progress_ = now;
    for (auto& pipeline : pipelines_) {
        const PipelineMetrics& m = *pipeline->metrics;
        std::uint64_t committed = m.committed.load();
        double rate =
            seconds > 0 ? static_cast<double>(committed - pipeline->last_committed) / seconds : 0;
        pipeline->last_committed = committed;
        std::string states;
        for (const auto& w : pipeline->workers)
            states += std::string(states.empty() ? "" : ",") + to_string(w->state());
        spdlog::info(
            "[{}] committed {} ({:.0f}/s), received {}, dead-lettered {}, rejected {}, "
            "batches {}, write failures {}, workers {}",
            pipeline->config->name, committed, rate, m.received.load(), m.dead_lettered.load(),
            m.rejected.load(), m.batches.load(), m.write_failures.load(), states);
    }
}

std::vector<Supervisor::PipelinePtr> Supervisor::drain(const std::vector<PipelinePtr>& pipelines,
                                                       std::chrono::milliseconds timeout) {
    // Workers give up on what they cannot commit a little before the deadline, so that closing
    // their connections still fits in it.
    auto worker_deadline = std::chrono::steady_clock::now() + timeout * 9 / 10;
    for (const auto& pipeline : pipelines) {
        if (pipeline->stop.requested.load())
            continue;  // a straggler of an earlier reload keeps its (passed) deadline
        pipeline->stop.deadline = worker_deadline.time_since_epoch().count();
        pipeline->stop.requested = true;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // std::thread has no timed join: wait for the worker states, then join (or give up on) them.
    while (std::chrono::steady_clock::now() < deadline &&
           !std::all_of(pipelines.begin(), pipelines.end(),
                        [](const PipelinePtr& p) { return p->finished(); }))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::vector<PipelinePtr> late;
    for (const auto& pipeline : pipelines) {
        if (!pipeline->finished()) {
            late.push_back(pipeline);
            continue;
        }
        for (auto& thread : pipeline->threads)
            thread.join();
        pipeline->threads.clear();
    }
    return late;
}

bool Supervisor::stop() {
    started_ = false;
    std::vector<PipelinePtr> all = pipelines_;
    all.insert(all.end(), stragglers_.begin(), stragglers_.end());
    auto started = std::chrono::steady_clock::now();
    auto timeout = std::chrono::milliseconds(config_->shutdown_timeout_ms);
    auto late = drain(all, timeout);
    // The workers' last acks are posted to the shared connections: they are sent (and the
    // connections closed) before the process exits, within what is left of the timeout.
    for (const auto& hub : hubs_)
        hub->stop(std::max(std::chrono::milliseconds(100),
                           timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)));
    for (const auto& pipeline : all)
        abandoned_ = abandoned_ || pipeline->stop.abandoned.load();
    // The process exits right after (std::_Exit), so detached workers never outlive what they
    // use; stragglers_ keeps their pipelines until then.
    for (const auto& pipeline : late) {
        for (auto& thread : pipeline->threads)
            thread.detach();
        pipeline->threads.clear();
    }
    bool clean = late.empty();
    stragglers_ = std::move(late);
    return clean;
}

}  // namespace rmq2pg
