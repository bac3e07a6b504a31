// The /metrics body: every pipeline's counters, gauges and histograms in the Prometheus text
// exposition format (version 0.0.4).
#include <fmt/format.h>

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "health.h"
#include "http_bodies.h"
#include "version.h"

namespace rmq2pg {

namespace {

constexpr WorkerState kAllStates[] = {
    WorkerState::starting,    WorkerState::connecting, WorkerState::consuming, WorkerState::writing,
    WorkerState::backing_off, WorkerState::paused,     WorkerState::stopped,   WorkerState::standby,
};

// Prometheus label values escape backslash, double quote and newline.
std::string label(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

class MetricsText {
  public:
    void header(const char* name, const char* type, const char* help) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                       type);
    }
    template <typename T>
    void value(const char* name, const std::string& labels, T v) {
        if (labels.empty())
            fmt::format_to(std::back_inserter(out_), "{} {}\n", name, v);
        else
            fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, v);
    }
    void histogram(const char* name, const std::string& labels, const Histogram::Snapshot& h) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.counts.size(); ++i) {
            cumulative += h.counts[i];
            std::string le = i < h.bounds.size() ? fmt::format("{}", h.bounds[i]) : "+Inf";
            fmt::format_to(std::back_inserter(out_), "{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                           le, cumulative);
        }
        fmt::format_to(std::back_inserter(out_), "{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name,
                       labels, h.sum, name, labels, cumulative);
    }
    std::string take() { return std::move(out_); }

  private:
    std::string out_;
};

std::string pipeline_label(const Supervisor::PipelineView& p) {
    return "pipeline=\"" + label(p.config->name) + "\"";
}

}  // namespace

std::string render_metrics(const Supervisor& supervisor, const StatusSampler& sampler) {
    auto views = supervisor.pipelines();
    auto status = sampler.snapshot();
    auto readings = supervisor.worker_readings();
    auto now = std::chrono::steady_clock::now();
    MetricsText m;

    m.header("rmq2pg_build_info", "gauge", "Always 1; the version is a label.");
    m.value("rmq2pg_build_info", "version=\"" RMQ2PG_VERSION "\"", 1);
    m.header("rmq2pg_start_time_seconds", "gauge", "When the process started, Unix time.");
    m.value("rmq2pg_start_time_seconds", "",
            static_cast<std::int64_t>(epoch_seconds(kProcessStart)));
    m.header("rmq2pg_healthy", "gauge", "1 when no worker is wedged (the /healthz verdict).");
    m.value(
        "rmq2pg_healthy", "",
        check_liveness(readings, wedge_threshold(supervisor.config()->shutdown_timeout_ms), now).ok
            ? 1
            : 0);
    m.header("rmq2pg_ready", "gauge", "1 when every worker is consuming (the /readyz verdict).");
    m.value("rmq2pg_ready", "", check_readiness(readings).ok ? 1 : 0);
    if (auto pool = supervisor.pg_pool()) {
        // Only in pooled mode (postgres.pool_size below the workers' total): a worker waiting
        // here is held up by the pool's size, not by its own database work.
        m.header("rmq2pg_pg_pool_size", "gauge", "PostgreSQL connections the pool may open.");
        m.value("rmq2pg_pg_pool_size", "", pool->size());
        m.header("rmq2pg_pg_pool_open", "gauge", "PostgreSQL connections the pool holds open.");
        m.value("rmq2pg_pg_pool_open", "", pool->open());
        m.header("rmq2pg_pg_pool_in_use", "gauge",
                 "Pooled PostgreSQL connections lent to a worker right now.");
        m.value("rmq2pg_pg_pool_in_use", "", pool->in_use());
        m.header("rmq2pg_pg_pool_waiting", "gauge",
                 "Workers waiting for a pooled PostgreSQL connection right now.");
        m.value("rmq2pg_pg_pool_waiting", "", pool->waiting());
        m.header("rmq2pg_pg_pool_opened_total", "counter",
                 "PostgreSQL connections the pool opened (above its size: replacements).");
        m.value("rmq2pg_pg_pool_opened_total", "", pool->opened_total());
    }
    if (auto hubs = supervisor.amqp_hubs(); !hubs.empty()) {
        // Only with shared AMQP connections (amqp.connections): a hub that is down stops every
        // consumer on it (their workers back off, and /readyz says so per worker).
        m.header("rmq2pg_amqp_shared_connection_up", "gauge",
                 "1 while the shared AMQP connection is open.");
        for (const auto& hub : hubs)
            m.value("rmq2pg_amqp_shared_connection_up",
                    "connection=\"" + std::to_string(hub->index()) + "\"",
                    hub->connected() ? 1 : 0);
        m.header("rmq2pg_amqp_shared_connection_channels", "gauge",
                 "Consumers (one channel each) on the shared AMQP connection.");
        for (const auto& hub : hubs)
            m.value("rmq2pg_amqp_shared_connection_channels",
                    "connection=\"" + std::to_string(hub->index()) + "\"", hub->channels());
        m.header("rmq2pg_amqp_shared_connection_connects_total", "counter",
                 "Times the shared AMQP connection was opened (above 1: reconnects).");
        for (const auto& hub : hubs)
            m.value("rmq2pg_amqp_shared_connection_connects_total",
                    "connection=\"" + std::to_string(hub->index()) + "\"", hub->connects());
    }

    struct Counter {
        const char* name;
        const char* help;
        const std::atomic<std::uint64_t> PipelineMetrics::*field;
    };
    static const Counter counters[] = {
        {"rmq2pg_messages_received_total", "Deliveries received from the broker.",
         &PipelineMetrics::received},
        {"rmq2pg_messages_committed_total", "Messages written to PostgreSQL (COMMIT succeeded).",
         &PipelineMetrics::committed},
        {"rmq2pg_messages_dead_lettered_total",
         "Poison messages published to the dead-letter target (confirmed).",
         &PipelineMetrics::dead_lettered},
        {"rmq2pg_messages_rejected_total", "Poison messages rejected (on_error: reject).",
         &PipelineMetrics::rejected},
        {"rmq2pg_messages_redelivered_total", "Deliveries that carried the redelivered flag.",
         &PipelineMetrics::redelivered},
        {"rmq2pg_batches_committed_total", "Batches written and acked.", &PipelineMetrics::batches},
        {"rmq2pg_write_failures_total", "Batch writes that failed and were retried.",
         &PipelineMetrics::write_failures},
        {"rmq2pg_amqp_connects_total", "AMQP connections opened by workers (>workers: reconnects).",
         &PipelineMetrics::amqp_connects},
        {"rmq2pg_pg_connects_total",
         "PostgreSQL connections opened by workers (>workers: reconnects).",
         &PipelineMetrics::pg_connects},
        {"rmq2pg_stream_lease_changes_total",
         "Streams: leases this instance's workers took, lost or released.",
         &PipelineMetrics::lease_changes},
        {"rmq2pg_unmapped_fields_total",
         "Body fields no column takes (columns by name): ignored and counted.",
         &PipelineMetrics::unmapped_fields},
        {"rmq2pg_change_events_skipped_total",
         "Debezium tombstones and ignored truncates, acknowledged without a row.",
         &PipelineMetrics::skipped_events},
    };
    for (const auto& c : counters) {
        m.header(c.name, "counter", c.help);
        for (const auto& p : views)
            m.value(c.name, pipeline_label(p), (p.metrics->*c.field).load());
    }

    m.header("rmq2pg_messages_in_flight", "gauge",
             "Messages received and not yet acked (open batches and backlogs).");
    for (const auto& p : views) {
        std::size_t in_flight = 0;
        for (const Worker* w : p.workers)
            in_flight += w->in_flight();
        m.value("rmq2pg_messages_in_flight", pipeline_label(p), in_flight);
    }
    m.header("rmq2pg_workers", "gauge", "Workers per state.");
    for (const auto& p : views)
        for (WorkerState state : kAllStates) {
            int n = 0;
            for (const Worker* w : p.workers)
                n += w->state() == state;
            m.value("rmq2pg_workers", pipeline_label(p) + ",state=\"" + to_string(state) + "\"", n);
        }

    m.header("rmq2pg_batch_size", "histogram", "Messages per committed write.");
    for (const auto& p : views)
        m.histogram("rmq2pg_batch_size", pipeline_label(p), p.metrics->batch_size.snapshot());
    m.header("rmq2pg_commit_duration_seconds", "histogram",
             "Time of one batch transaction, COPY to COMMIT.");
    for (const auto& p : views)
        m.histogram("rmq2pg_commit_duration_seconds", pipeline_label(p),
                    p.metrics->commit_seconds.snapshot());
    m.header("rmq2pg_end_to_end_latency_seconds", "histogram",
             "AMQP timestamp property to COMMIT, for messages that carry one (1 s resolution).");
    for (const auto& p : views)
        m.histogram("rmq2pg_end_to_end_latency_seconds", pipeline_label(p),
                    p.metrics->latency_seconds.snapshot());

    // The sampler's entries follow the pipelines by name (a reload may have changed them since).
    std::vector<const StatusSampler::PipelineStatus*> sampled;
    for (const auto& p : views)
        sampled.push_back(StatusSampler::find(status, p.config->name));
    m.header("rmq2pg_queue_messages", "gauge",
             "Ready messages in the pipeline's queue at the last poll (every 5 s).");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->queue.known)
            m.value("rmq2pg_queue_messages",
                    pipeline_label(views[i]) + ",queue=\"" + label(views[i].config->queue) + "\"",
                    sampled[i]->queue.messages);
    m.header("rmq2pg_queue_consumers", "gauge", "Consumers of the queue at the last poll.");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->queue.known)
            m.value("rmq2pg_queue_consumers",
                    pipeline_label(views[i]) + ",queue=\"" + label(views[i].config->queue) + "\"",
                    sampled[i]->queue.consumers);
    m.header("rmq2pg_dead_letter_queue_messages", "gauge",
             "Messages in the pipeline's dead-letter queue at the last poll (every 5 s; 0 until "
             "the queue exists).");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->dead_letter_queue.known)
            m.value("rmq2pg_dead_letter_queue_messages",
                    pipeline_label(views[i]) + ",queue=\"" +
                        label(sampled[i]->dead_letter_queue_name) + "\"",
                    sampled[i]->dead_letter_queue.messages);
    m.header("rmq2pg_queue_poll_ok", "gauge", "1 when the last queue-depth poll succeeded.");
    for (std::size_t i = 0; i < views.size(); ++i)
        m.value("rmq2pg_queue_poll_ok", pipeline_label(views[i]),
                sampled[i] && sampled[i]->queue.known && sampled[i]->queue.error.empty() ? 1 : 0);

    // Streams, as rmq2pg_state holds them (every instance's view is the same).
    m.header("rmq2pg_stream_next_offset", "gauge",
             "Streams: the next offset stored with the last committed batch (polled every 5 s).");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->streams_known)
            for (const auto& s : sampled[i]->streams)
                if (s.next_offset)
                    m.value("rmq2pg_stream_next_offset",
                            pipeline_label(views[i]) + ",stream=\"" + label(s.stream) + "\"",
                            *s.next_offset);
    m.header("rmq2pg_stream_lag_messages", "gauge",
             "Streams: messages between the stored next offset and the stream's end as the broker "
             "tells it (message_count + first offset; up to 10 s old). Absent while unknown.");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->streams_known)
            for (const auto& s : sampled[i]->streams)
                if (const StreamEnd* end = find_stream_end(sampled[i]->stream_ends, s.stream))
                    if (auto lag = stream_lag(*end, s.next_offset))
                        m.value("rmq2pg_stream_lag_messages",
                                pipeline_label(views[i]) + ",stream=\"" + label(s.stream) + "\"",
                                *lag);
    m.header("rmq2pg_stream_owned", "gauge",
             "Streams: 1 when a worker of some instance holds the stream's lease (owner label).");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->streams_known)
            for (const auto& s : sampled[i]->streams)
                m.value("rmq2pg_stream_owned",
                        pipeline_label(views[i]) + ",stream=\"" + label(s.stream) + "\",owner=\"" +
                            label(s.owner) + "\"",
                        s.leased && !s.owner.empty() ? 1 : 0);
    m.header("rmq2pg_stream_leases_total", "counter",
             "Streams: leases taken over the stream's life, all instances (claims and replays).");
    for (std::size_t i = 0; i < views.size(); ++i)
        if (sampled[i] && sampled[i]->streams_known)
            for (const auto& s : sampled[i]->streams)
                m.value("rmq2pg_stream_leases_total",
                        pipeline_label(views[i]) + ",stream=\"" + label(s.stream) + "\"",
                        s.lease_changes);
    return m.take();
}

}  // namespace rmq2pg
