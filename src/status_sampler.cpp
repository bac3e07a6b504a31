// Counter sampling and queue-depth polling; see status_sampler.h.
#include "status_sampler.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "amqp_session.h"
#include "dead_letter_tools.h"
#include "pg_writer.h"

namespace rmq2pg {

StatusSampler::StatusSampler(const Supervisor& supervisor, bool poll_queues)
    : supervisor_(supervisor), poll_queues_(poll_queues), shared_(std::make_shared<Shared>()) {}

StatusSampler::~StatusSampler() {
    stop();
}

void StatusSampler::start() {
    take_sample();
    sampler_ = std::thread([this] { sample_loop(); });
    if (!poll_queues_)
        return;
    // The poller's world: the shared state and copies of what it needs, so that a poller left
    // behind at shutdown (stuck in a connect) touches nothing the rest of the process destroys.
    poller_ = std::thread([shared = shared_] {
        std::unique_ptr<AmqpSession> session;
        std::shared_ptr<const Config> session_config;  // what `session` was opened with
        std::size_t url_index = 0;
        std::unique_lock<std::mutex> guard(shared->lock);
        while (!shared->stopping) {
            // Copied each round: a reload may change the pipelines and the broker URLs.
            std::shared_ptr<const Config> config = shared->config;
            std::vector<std::string> stream_pipelines;
            for (const auto& p : shared->pipelines)
                if (p.is_stream)
                    stream_pipelines.push_back(p.name);
            for (std::size_t i = 0; i < stream_pipelines.size() && !shared->stopping; ++i) {
                guard.unlock();  // never hold the lock across network calls
                std::vector<StreamReading> streams;
                std::string error;
                try {
                    streams =
                        read_streams(PgConnectionSettings::of(*config, "rmq2pg status poller"),
                                     stream_pipelines[i]);
                } catch (const WriteError& e) {
                    error = e.what();
                }
                guard.lock();
                for (auto& p : shared->pipelines) {
                    if (p.name != stream_pipelines[i])
                        continue;
                    p.streams_error = error;
                    if (error.empty()) {
                        p.streams = streams;
                        p.streams_known = true;
                    }
                }
            }
            struct Target {
                std::string pipeline, queue;
                enum class What { depth, dead_letters, stream_end } what;
                bool probe_first = false;  // stream: probe its first offset too
            };
            std::vector<Target> targets;
            auto now = std::chrono::steady_clock::now();
            for (const auto& p : shared->pipelines) {
                if (!p.is_stream)  // a stream's backlog is its lag (below)
                    targets.push_back({p.name, p.queue_name, Target::What::depth});
                if (!p.dead_letter_queue_name.empty())
                    targets.push_back(
                        {p.name, p.dead_letter_queue_name, Target::What::dead_letters});
                for (const auto& end : p.stream_ends)
                    targets.push_back({p.name, end.stream, Target::What::stream_end,
                                       end.probed == std::chrono::steady_clock::time_point{} ||
                                           now - end.probed >= kFirstOffsetProbeInterval});
            }
            for (std::size_t i = 0; i < targets.size() && !shared->stopping; ++i) {
                const Target& t = targets[i];
                guard.unlock();  // never hold the lock across network calls
                QueueState state;
                std::optional<std::int64_t> first_offset;
                std::string error;
                try {
                    if (config != session_config) {
                        session.reset();
                        session_config = config;
                        url_index = 0;
                    }
                    if (!session)
                        session = std::make_unique<AmqpSession>(config->amqp_urls[url_index],
                                                                config->heartbeat_s,
                                                                "rmq2pg status poller");
                    if (t.what != Target::What::dead_letters)
                        state = session->inspect_queue(t.queue);
                    else
                        state = session->inspect_queue_if_exists(t.queue).value_or(QueueState{});
                    if (t.probe_first)
                        first_offset =
                            probe_first_offset(config->amqp_urls[url_index], config->heartbeat_s,
                                               t.queue, kFirstOffsetProbeTimeout);
                } catch (const AmqpError& e) {
                    // A missing queue closes the channel, a broker outage the connection:
                    // either way the next poll starts on a fresh connection (the next URL).
                    error = e.what();
                    session.reset();
                    url_index = (url_index + 1) % config->amqp_urls.size();
                    spdlog::debug("status poller: queue '{}': {}", t.queue, error);
                }
                guard.lock();
                for (auto& p : shared->pipelines) {
                    if (p.name != t.pipeline)
                        continue;
                    if (t.what == Target::What::stream_end) {
                        for (auto& end : p.stream_ends) {
                            if (end.stream != t.queue)
                                continue;
                            end.error = error;
                            if (!error.empty())
                                continue;
                            end.known = true;
                            end.messages = state.messages;
                            end.at = std::chrono::system_clock::now();
                            if (t.probe_first) {
                                end.probed = std::chrono::steady_clock::now();
                                if (first_offset)  // an empty stream keeps what was known
                                    end.first_offset = first_offset;
                            }
                        }
                        continue;
                    }
                    bool dead_letters = t.what == Target::What::dead_letters;
                    if ((dead_letters ? p.dead_letter_queue_name : p.queue_name) != t.queue)
                        continue;
                    QueueReading& q = dead_letters ? p.dead_letter_queue : p.queue;
                    q.error = error;
                    if (error.empty()) {
                        q.known = true;
                        q.messages = state.messages;
                        q.consumers = state.consumers;
                        q.at = std::chrono::system_clock::now();
                    }
                }
            }
            // Between polls the connection must still send heartbeats, or the broker closes it
            // after two intervals (a heartbeat_s below the poll interval did, every poll).
            auto next_poll = std::chrono::steady_clock::now() + kQueuePollInterval;
            while (!shared->stopping && std::chrono::steady_clock::now() < next_poll) {
                std::chrono::milliseconds slice = kQueuePollInterval;
                if (session && session->heartbeat_interval().count() > 0)
                    slice = std::min<std::chrono::milliseconds>(
                        slice, std::chrono::milliseconds(session->heartbeat_interval()) / 2);
                shared->wake.wait_for(guard, slice, [&] { return shared->stopping; });
                if (shared->stopping || !session)
                    continue;
                guard.unlock();
                try {
                    session->send_heartbeat();
                } catch (const AmqpError&) {
                    session.reset();  // the next poll reconnects
                }
                guard.lock();
            }
        }
        guard.unlock();
        session.reset();
        guard.lock();
        shared->poller_done = true;
        shared->wake.notify_all();
    });
}

void StatusSampler::stop() {
    {
        std::lock_guard<std::mutex> guard(shared_->lock);
        shared_->stopping = true;
    }
    shared_->wake.notify_all();
    if (sampler_.joinable())
        sampler_.join();
    if (poller_.joinable()) {
        std::unique_lock<std::mutex> guard(shared_->lock);
        bool done = shared_->wake.wait_for(guard, std::chrono::seconds(2),
                                           [&] { return shared_->poller_done; });
        guard.unlock();
        if (done)
            poller_.join();
        else
            poller_.detach();
    }
}

void StatusSampler::sample_loop() {
    std::unique_lock<std::mutex> guard(shared_->lock);
    auto next = std::chrono::steady_clock::now() + kInterval;
    while (!shared_->wake.wait_until(guard, next, [&] { return shared_->stopping; })) {
        guard.unlock();
        take_sample();
        guard.lock();
        next += kInterval;
    }
}

void StatusSampler::take_sample() {
    auto views = supervisor_.pipelines();
    auto config = supervisor_.config();
    auto now = std::chrono::system_clock::now();
    std::vector<Sample> samples;
    for (const auto& view : views) {
        Sample s;
        s.at = now;
        s.received = view.metrics->received.load();
        s.committed = view.metrics->committed.load();
        s.dead_lettered = view.metrics->dead_lettered.load();
        s.commit_seconds = view.metrics->commit_seconds.snapshot();
        samples.push_back(std::move(s));
    }
    std::lock_guard<std::mutex> guard(shared_->lock);
    // Follow the supervisor's pipelines by name: a pipeline a reload restarted keeps its
    // metrics, so it keeps its ring too; a removed one drops out, an added one starts empty.
    std::vector<PipelineStatus> next(views.size());
    for (std::size_t i = 0; i < views.size(); ++i) {
        PipelineStatus& status = next[i];
        for (auto& old : shared_->pipelines)
            if (old.name == views[i].config->name)
                status = std::move(old);
        status.name = views[i].config->name;
        if (status.queue_name != views[i].config->queue)
            status.queue = QueueReading{};
        status.queue_name = views[i].config->queue;
        status.is_stream = views[i].config->is_stream();
        // One broker reading per stream of the config, kept across samples by stream name.
        std::vector<StreamEnd> ends;
        for (const auto& stream : views[i].config->streams) {
            ends.emplace_back();
            for (auto& old : status.stream_ends)
                if (old.stream == stream)
                    ends.back() = std::move(old);
            ends.back().stream = stream;
        }
        status.stream_ends = std::move(ends);
        std::string why;
        std::string dead_letter_queue =
            views[i].config->is_stream()
                ? std::string()  // one per stream: <stream>.dead
                : dead_letter_queue_of(*config, *views[i].config, why).value_or("");
        if (status.dead_letter_queue_name != dead_letter_queue)
            status.dead_letter_queue = QueueReading{};
        status.dead_letter_queue_name = std::move(dead_letter_queue);
        auto& ring = status.samples;
        if (ring.size() == kRingSize)
            ring.erase(ring.begin());  // 150 elements every 2 s: a deque buys nothing here
        ring.push_back(std::move(samples[i]));
        status.rates = rates_of(ring, kRateWindow);
    }
    shared_->pipelines = std::move(next);
    shared_->config = std::move(config);
}

std::vector<StatusSampler::PipelineStatus> StatusSampler::snapshot() const {
    std::lock_guard<std::mutex> guard(shared_->lock);
    return shared_->pipelines;
}

const StatusSampler::PipelineStatus* StatusSampler::find(const std::vector<PipelineStatus>& status,
                                                         const std::string& name) {
    for (const auto& s : status)
        if (s.name == name)
            return &s;
    return nullptr;
}

std::string StatusSampler::summary() const {
    auto status = snapshot();
    auto views = supervisor_.pipelines();
    std::string line;
    for (std::size_t i = 0; i < views.size(); ++i) {
        const PipelineStatus* s = find(status, views[i].config->name);
        Rates rates = s ? s->rates : Rates{};
        std::size_t consuming = 0;
        for (const Worker* w : views[i].workers)
            consuming += w->state() == WorkerState::consuming || w->state() == WorkerState::writing;
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "%s%s: %.0f msg/s committed (%llu total), %.0f/s dead-lettered, "
                      "%zu/%zu workers consuming",
                      line.empty() ? "" : "; ", views[i].config->name.c_str(), rates.committed,
                      static_cast<unsigned long long>(views[i].metrics->committed.load()),
                      rates.dead_lettered, consuming, views[i].workers.size());
        line += buf;
    }
    return line;
}

StatusSampler::Rates StatusSampler::rates_of(const std::vector<Sample>& samples,
                                             std::chrono::seconds window) {
    Rates rates;
    if (samples.size() < 2)
        return rates;
    const Sample& last = samples.back();
    const Sample* first = &samples.back();
    for (auto it = samples.rbegin() + 1; it != samples.rend(); ++it) {
        if (last.at - it->at > window)
            break;
        first = &*it;
    }
    double seconds = std::chrono::duration<double>(last.at - first->at).count();
    if (seconds <= 0)
        return rates;
    rates.received = static_cast<double>(last.received - first->received) / seconds;
    rates.committed = static_cast<double>(last.committed - first->committed) / seconds;
    rates.dead_lettered = static_cast<double>(last.dead_lettered - first->dead_lettered) / seconds;
    return rates;
}

}  // namespace rmq2pg
