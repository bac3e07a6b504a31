// The observability endpoints; see http_server.h. Every handler builds its body from
// Supervisor::pipelines() (atomics), Supervisor::worker_readings() and StatusSampler::snapshot()
// (a copy under the sampler's lock), so a slow scrape never slows a worker.
#include "http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "health.h"
#include "json_escape.h"
#include "status_page.h"
#include "version.h"

namespace rmq2pg {

namespace {

const auto kProcessStart = std::chrono::system_clock::now();

constexpr WorkerState kAllStates[] = {
    WorkerState::starting,    WorkerState::connecting, WorkerState::consuming, WorkerState::writing,
    WorkerState::backing_off, WorkerState::paused,     WorkerState::stopped,
};

std::string rfc3339(std::chrono::system_clock::time_point at) {
    std::time_t t = std::chrono::system_clock::to_time_t(at);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

double epoch_seconds(std::chrono::system_clock::time_point at) {
    return std::chrono::duration<double>(at.time_since_epoch()).count();
}

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

// JSON has no NaN or infinity; rates and quantiles are finite by construction, this makes sure.
std::string json_number(double value) {
    if (!std::isfinite(value))
        return "null";
    return fmt::format("{:.3f}", value);
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

void append_reasons(std::string& out, const std::vector<std::string>& reasons) {
    out += "[";
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (i > 0)
            out += ",";
        append_json_string(out, reasons[i]);
    }
    out += "]";
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
    m.header("rmq2pg_queue_poll_ok", "gauge", "1 when the last queue-depth poll succeeded.");
    for (std::size_t i = 0; i < views.size(); ++i)
        m.value("rmq2pg_queue_poll_ok", pipeline_label(views[i]),
                sampled[i] && sampled[i]->queue.known && sampled[i]->queue.error.empty() ? 1 : 0);
    return m.take();
}

std::string render_status(const Supervisor& supervisor, const StatusSampler& sampler) {
    auto views = supervisor.pipelines();
    auto status = sampler.snapshot();
    auto readings = supervisor.worker_readings();
    auto steady_now = std::chrono::steady_clock::now();
    auto now = std::chrono::system_clock::now();
    auto liveness = check_liveness(
        readings, wedge_threshold(supervisor.config()->shutdown_timeout_ms), steady_now);
    auto readiness = check_readiness(readings);

    std::string out;
    auto put = [&out](auto&&... args) {
        fmt::format_to(std::back_inserter(out), std::forward<decltype(args)>(args)...);
    };
    put("{{\"version\":\"{}\",\"time\":\"{}\",\"uptime_s\":{},\"healthy\":{},\"ready\":{},"
        "\"sample_interval_s\":{},\"pipelines\":[",
        RMQ2PG_VERSION, rfc3339(now),
        std::chrono::duration_cast<std::chrono::seconds>(now - kProcessStart).count(), liveness.ok,
        readiness.ok, StatusSampler::kInterval.count());
    for (std::size_t i = 0; i < views.size(); ++i) {
        const auto& p = views[i];
        const PipelineMetrics& m = *p.metrics;
        const StatusSampler::PipelineStatus* sampled = StatusSampler::find(status, p.config->name);
        StatusSampler::PipelineStatus s = sampled ? *sampled : StatusSampler::PipelineStatus{};
        if (i > 0)
            out += ",";
        out += "{\"name\":";
        append_json_string(out, p.config->name);
        out += ",\"queue\":";
        append_json_string(out, p.config->queue);
        out += ",\"table\":";
        append_json_string(out, p.config->qualified_table());
        put(",\"mode\":\"{}\",\"workers\":[", to_string(p.config->mode));
        std::size_t in_flight = 0;
        for (std::size_t w = 0; w < p.workers.size(); ++w) {
            in_flight += p.workers[w]->in_flight();
            put("{}{{\"index\":{},\"state\":\"{}\",\"in_flight\":{},\"idle_s\":{}}}",
                w > 0 ? "," : "", w, to_string(p.workers[w]->state()), p.workers[w]->in_flight(),
                json_number(
                    std::chrono::duration<double>(steady_now - p.workers[w]->last_progress())
                        .count()));
        }
        put("],\"counters\":{{\"received\":{},\"committed\":{},\"dead_lettered\":{},"
            "\"rejected\":{},\"redelivered\":{},\"batches\":{},\"write_failures\":{},"
            "\"amqp_connects\":{},\"pg_connects\":{}}}",
            m.received.load(), m.committed.load(), m.dead_lettered.load(), m.rejected.load(),
            m.redelivered.load(), m.batches.load(), m.write_failures.load(), m.amqp_connects.load(),
            m.pg_connects.load());
        put(",\"rates\":{{\"received\":{},\"committed\":{},\"dead_lettered\":{},\"window_s\":{}}}",
            json_number(s.rates.received), json_number(s.rates.committed),
            json_number(s.rates.dead_lettered), StatusSampler::kRateWindow.count());
        put(",\"in_flight\":{}", in_flight);
        if (s.queue.known)
            put(",\"queue_depth\":{{\"messages\":{},\"consumers\":{},\"at\":\"{}\",\"error\":",
                s.queue.messages, s.queue.consumers, rfc3339(s.queue.at));
        else
            out += ",\"queue_depth\":{\"messages\":null,\"consumers\":null,\"at\":null,\"error\":";
        if (s.queue.error.empty())
            out += "null}";
        else {
            append_json_string(out, s.queue.error);
            out += "}";
        }
        // Commit latency over the ring (up to 5 minutes), not since start: what is happening now.
        Histogram::Snapshot recent = m.commit_seconds.snapshot();
        double window_s = 0;
        if (!s.samples.empty()) {
            recent = recent.since(s.samples.front().commit_seconds);
            window_s = std::chrono::duration<double>(now - s.samples.front().at).count();
        }
        auto p50 = recent.quantile(0.5), p99 = recent.quantile(0.99);
        put(",\"commit_latency_ms\":{{\"p50\":{},\"p99\":{},\"commits\":{},\"window_s\":{}}}",
            p50 ? json_number(*p50 * 1000) : "null", p99 ? json_number(*p99 * 1000) : "null",
            recent.count, json_number(window_s));
        LastError::Value error = m.last_error.get();
        if (error.text.empty()) {
            out += ",\"last_error\":null";
        } else {
            out += ",\"last_error\":{\"text\":";
            append_json_string(out, error.text);
            put(",\"at\":\"{}\"}}", rfc3339(error.at));
        }
        // The chart: per-interval rates between consecutive samples, oldest first.
        out += ",\"history\":[";
        for (std::size_t k = 1; k < s.samples.size(); ++k) {
            const auto& a = s.samples[k - 1];
            const auto& b = s.samples[k];
            double dt = std::chrono::duration<double>(b.at - a.at).count();
            if (dt <= 0)
                continue;
            put("{}{{\"t\":{},\"received\":{},\"committed\":{},\"dead_lettered\":{}}}",
                k > 1 ? "," : "", static_cast<std::int64_t>(epoch_seconds(b.at)),
                json_number(static_cast<double>(b.received - a.received) / dt),
                json_number(static_cast<double>(b.committed - a.committed) / dt),
                json_number(static_cast<double>(b.dead_lettered - a.dead_lettered) / dt));
        }
        out += "]}";
    }
    out += "]}";
    return out;
}

struct HttpServer::Impl {
    const Supervisor& supervisor;
    const StatusSampler& sampler;
    std::string host;
    int port;
    httplib::Server server;
    std::thread thread;
    std::atomic<bool> stopping{false};
};

HttpServer::HttpServer(const Supervisor& supervisor, const StatusSampler& sampler, std::string host,
                       int port)
    : impl_(new Impl{supervisor, sampler, std::move(host), port, {}, {}, {}}) {}

HttpServer::~HttpServer() {
    stop();
}

void HttpServer::start() {
    Impl& impl = *impl_;
    auto& server = impl.server;
    // Two handler threads: scrapes and a status page or two, never a crowd; cpp-httplib's
    // default would start one per core.
    server.new_task_queue = [] { return new httplib::ThreadPool(2); };
    server.set_keep_alive_timeout(5);
    server.set_read_timeout(5);
    server.set_write_timeout(5);
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown error";
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            res.status = 500;
            res.set_content("{\"error\":" + json_string(what) + "}", "application/json");
        });

    server.Get("/metrics", [&impl](const httplib::Request&, httplib::Response& res) {
        res.set_content(render_metrics(impl.supervisor, impl.sampler),
                        "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/healthz", [&impl](const httplib::Request&, httplib::Response& res) {
        auto threshold = wedge_threshold(impl.supervisor.config()->shutdown_timeout_ms);
        auto verdict = check_liveness(impl.supervisor.worker_readings(), threshold,
                                      std::chrono::steady_clock::now());
        std::string body = verdict.ok ? "{\"status\":\"ok\"" : "{\"status\":\"wedged\"";
        body += fmt::format(",\"wedge_threshold_s\":{},\"reasons\":",
                            std::chrono::duration_cast<std::chrono::seconds>(threshold).count());
        append_reasons(body, verdict.reasons);
        body += "}";
        res.status = verdict.ok ? 200 : 503;
        res.set_content(body, "application/json");
    });
    server.Get("/readyz", [&impl](const httplib::Request&, httplib::Response& res) {
        auto verdict = check_readiness(impl.supervisor.worker_readings());
        if (impl.stopping.load()) {
            verdict.ok = false;
            verdict.reasons.insert(verdict.reasons.begin(), "shutting down");
        }
        std::string body = verdict.ok ? "{\"status\":\"ready\"" : "{\"status\":\"not ready\"";
        body += ",\"reasons\":";
        append_reasons(body, verdict.reasons);
        body += "}";
        res.status = verdict.ok ? 200 : 503;
        res.set_content(body, "application/json");
    });
    server.Get("/api/status", [&impl](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-store");
        res.set_content(render_status(impl.supervisor, impl.sampler), "application/json");
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(kStatusPage, "text/html; charset=utf-8");
    });

    std::string address =
        (impl.host.find(':') != std::string::npos ? "[" + impl.host + "]" : impl.host) + ":" +
        std::to_string(impl.port);
    errno = 0;
    if (!server.bind_to_port(impl.host, impl.port)) {
        int error = errno;  // cpp-httplib reports a bool; bind()'s errno says why
        throw std::runtime_error("http.listen " + address + ": cannot listen" +
                                 (error != 0 ? std::string(": ") + std::strerror(error) : ""));
    }
    impl.thread = std::thread([&server] { server.listen_after_bind(); });
    spdlog::info("http: serving /metrics, /healthz, /readyz, /api/status and / on {}", address);
}

void HttpServer::note_stopping() {
    impl_->stopping = true;
}

void HttpServer::stop() {
    if (!impl_->thread.joinable())
        return;
    impl_->server.stop();
    impl_->thread.join();
}

}  // namespace rmq2pg
