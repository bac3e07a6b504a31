// Worker pool lifecycle; see supervisor.h.
#include "supervisor.h"

#include <spdlog/spdlog.h>

#include <future>

namespace rmq2pg {

Supervisor::Supervisor(Config config) : config_(std::move(config)) {
    for (const auto& p : config_.pipelines) {
        auto pipeline = std::make_unique<Pipeline>();
        pipeline->config = &p;
        for (int i = 0; i < p.workers; ++i)
            pipeline->workers.push_back(
                std::make_unique<Worker>(config_, p, i, stop_, pipeline->metrics));
        pipelines_.push_back(std::move(pipeline));
    }
}

Supervisor::~Supervisor() {
    if (!threads_.empty())
        stop();
}

void Supervisor::start() {
    last_progress_ = std::chrono::steady_clock::now();
    for (auto& pipeline : pipelines_)
        for (auto& worker : pipeline->workers)
            threads_.emplace_back([w = worker.get()] { w->run(); });
}

bool Supervisor::all_consuming() const {
    for (const auto& pipeline : pipelines_)
        for (const auto& worker : pipeline->workers) {
            WorkerState s = worker->state();
            if (s != WorkerState::consuming && s != WorkerState::writing)
                return false;
        }
    return true;
}

std::vector<Supervisor::PipelineView> Supervisor::pipelines() const {
    std::vector<PipelineView> views;
    for (const auto& pipeline : pipelines_) {
        PipelineView view{pipeline->config, &pipeline->metrics, {}};
        for (const auto& worker : pipeline->workers)
            view.workers.push_back(worker.get());
        views.push_back(std::move(view));
    }
    return views;
}

std::vector<WorkerReading> Supervisor::worker_readings() const {
    std::vector<WorkerReading> readings;
    for (const auto& pipeline : pipelines_)
        for (std::size_t i = 0; i < pipeline->workers.size(); ++i)
            readings.push_back({pipeline->config->name, static_cast<int>(i),
                                pipeline->workers[i]->state(),
                                pipeline->workers[i]->last_progress()});
    return readings;
}

void Supervisor::log_progress() {
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_progress_).count();
    last_progress_ = now;
    for (auto& pipeline : pipelines_) {
        const PipelineMetrics& m = pipeline->metrics;
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

bool Supervisor::stop() {
    auto timeout = std::chrono::milliseconds(config_.shutdown_timeout_ms);
    // Workers give up on what they cannot commit a little before the deadline, so that closing
    // their connections still fits in it.
    auto worker_deadline = std::chrono::steady_clock::now() + timeout * 9 / 10;
    stop_.deadline = worker_deadline.time_since_epoch().count();
    stop_.requested = true;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool all_stopped = true;
    // std::thread has no timed join: wait for the worker states, then join (or give up on) them.
    while (std::chrono::steady_clock::now() < deadline) {
        bool done = true;
        for (auto& pipeline : pipelines_)
            for (auto& worker : pipeline->workers)
                done = done && worker->state() == WorkerState::stopped;
        if (done)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (auto& pipeline : pipelines_)
        for (auto& worker : pipeline->workers)
            all_stopped = all_stopped && worker->state() == WorkerState::stopped;
    if (all_stopped) {
        for (auto& thread : threads_)
            thread.join();
    } else {
        for (auto& thread : threads_)
            thread.detach();
    }
    threads_.clear();
    return all_stopped;
}

}  // namespace rmq2pg
