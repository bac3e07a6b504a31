// The observability endpoints; see http_server.h. Every handler builds its body from
// Supervisor::pipelines() (atomics), Supervisor::worker_readings() and StatusSampler::snapshot()
// (a copy under the sampler's lock), so a slow scrape never slows a worker.
#include "http_server.h"

#include <fmt/format.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "health.h"
#include "http_connection_guard.h"
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

namespace {

// The transport's bounds (docs/operations.md "Limits"). A probe or a scrape sends its request in
// milliseconds, so these only ever cut clients that hold a connection without using it.
// - 500 connections not yet cut: far above the few scrapers and status pages, below the default
//   1024 open files together with the workers' sockets. Beyond it, a new connection takes the
//   slot of the one that has waited longest for its request (ConnectionGuard).
constexpr std::size_t kMaxConnections = 500;
// - libmicrohttpd's own cap sits above ours: cut connections count there until the polling
//   thread has closed them (its next turn), and a new probe must never meet that cap.
constexpr unsigned kConnectionHeadroom = 64;
// - 10 s to send the request line and headers (from the accept, or from the previous response
//   on a kept-alive connection), and 10 s to take a response: a slowloris client, an idle
//   keep-alive and a reader that stalls all give their slot back.
constexpr auto kPhaseDeadline = std::chrono::seconds(10);
constexpr auto kSweepInterval = std::chrono::milliseconds(500);
// Closed clients are reported at most once per 10 s, summed: a sustained attack is a line, not
// a flood.
constexpr auto kReportEvery = std::chrono::seconds(10);
constexpr int kWhyCount = 4;
// - 16 KiB per connection for the request line and headers (libmicrohttpd answers 431 beyond):
//   browsers and scrapers send well under 2 KiB; 564 connections stay under 10 MiB.
constexpr std::size_t kConnectionMemory = 16 * 1024;

struct Response {
    unsigned status = 200;
    std::string body;
    const char* content_type = nullptr;
    bool no_store = false;
};

const char* describe(ConnectionGuard::Why why) {
    switch (why) {
        case ConnectionGuard::Why::evicted:
            return "evicted at the connection cap";
        case ConnectionGuard::Why::request_deadline:
            return "no complete request";
        case ConnectionGuard::Why::idle_deadline:
            return "idle keep-alive";
        case ConnectionGuard::Why::response_deadline:
            return "response not taken";
    }
    return "?";
}

// Threads: libmicrohttpd's one polling thread (epoll) accepts, reads requests, runs the
// handlers and writes responses; the sweeper thread cuts connections past their deadline. Both
// reach `guard` under `guard_mutex`, and a cut is shutdown(2) on the socket under that lock:
// libmicrohttpd reports a connection closed (ConnectionGuard::closed) before it closes the
// socket, so a cut never reaches a reused descriptor. The polling thread then sees the
// shutdown as end of stream and frees the connection itself.
struct Server {
    Server(const Supervisor& supervisor_, const StatusSampler& sampler_, std::string host_,
           int port_)
        : supervisor(supervisor_), sampler(sampler_), host(std::move(host_)), port(port_) {}

    const Supervisor& supervisor;
    const StatusSampler& sampler;
    std::string host;
    int port;
    std::atomic<bool> stopping{false};
    MHD_Daemon* daemon = nullptr;

    std::mutex guard_mutex;
    ConnectionGuard guard{{kMaxConnections, kPhaseDeadline}};
    std::size_t cut_counts[kWhyCount] = {};  // since the last report, per ConnectionGuard::Why

    std::thread sweeper;
    std::mutex sweeper_mutex;  // sweeper_stop, between stop() and the sweeper
    std::condition_variable sweeper_wake;
    bool sweeper_stop = false;

    Response route(const std::string& method, const std::string& path) const;
    void cut(const std::vector<ConnectionGuard::Cut>& cuts);  // caller holds guard_mutex
    void sweep();  // the sweeper thread: deadlines, and the report of closed clients
};

Response Server::route(const std::string& method, const std::string& path) const {
    if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD)
        return {404, "", nullptr};
    if (path == "/metrics")
        return {200, render_metrics(supervisor, sampler),
                "text/plain; version=0.0.4; charset=utf-8"};
    if (path == "/healthz") {
        auto threshold = wedge_threshold(supervisor.config()->shutdown_timeout_ms);
        auto verdict = check_liveness(supervisor.worker_readings(), threshold,
                                      std::chrono::steady_clock::now());
        std::string body = verdict.ok ? "{\"status\":\"ok\"" : "{\"status\":\"wedged\"";
        body += fmt::format(",\"wedge_threshold_s\":{},\"reasons\":",
                            std::chrono::duration_cast<std::chrono::seconds>(threshold).count());
        append_reasons(body, verdict.reasons);
        body += "}";
        return {verdict.ok ? 200u : 503u, std::move(body), "application/json"};
    }
    if (path == "/readyz") {
        auto verdict = check_readiness(supervisor.worker_readings());
        if (stopping.load()) {
            verdict.ok = false;
            verdict.reasons.insert(verdict.reasons.begin(), "shutting down");
        }
        std::string body = verdict.ok ? "{\"status\":\"ready\"" : "{\"status\":\"not ready\"";
        body += ",\"reasons\":";
        append_reasons(body, verdict.reasons);
        body += "}";
        return {verdict.ok ? 200u : 503u, std::move(body), "application/json"};
    }
    if (path == "/api/status")
        return {200, render_status(supervisor, sampler), "application/json", true};
    if (path == "/")
        return {200, kStatusPage, "text/html; charset=utf-8"};
    return {404, "", nullptr};
}

void Server::cut(const std::vector<ConnectionGuard::Cut>& cuts) {
    for (const auto& c : cuts) {
        ::shutdown(c.id, SHUT_RDWR);
        ++cut_counts[static_cast<int>(c.why)];
    }
}

void Server::sweep() {
    using Why = ConnectionGuard::Why;
    auto last_report = std::chrono::steady_clock::time_point{};
    std::unique_lock<std::mutex> lock(sweeper_mutex);
    while (!sweeper_wake.wait_for(lock, kSweepInterval, [this] { return sweeper_stop; })) {
        auto now = std::chrono::steady_clock::now();
        std::size_t counts[kWhyCount], open;
        {
            std::lock_guard<std::mutex> guard_lock(guard_mutex);
            cut(guard.expired(now));
            if (now - last_report < kReportEvery)
                continue;
            std::copy(std::begin(cut_counts), std::end(cut_counts), counts);
            std::fill(std::begin(cut_counts), std::end(cut_counts), 0);
            open = guard.open();
        }
        std::string what;
        std::size_t total = 0;
        bool worth_a_warning = false;
        for (Why why :
             {Why::request_deadline, Why::evicted, Why::response_deadline, Why::idle_deadline}) {
            if (std::size_t n = counts[static_cast<int>(why)]) {
                what += fmt::format("{}{} {}", what.empty() ? "" : ", ", n, describe(why));
                total += n;
                // Closing an idle keep-alive is routine (a scraper keeps its connection between
                // scrapes); the others are clients holding a slot without using it.
                worth_a_warning |= why != Why::idle_deadline;
            }
        }
        if (total == 0)
            continue;
        spdlog::log(worth_a_warning ? spdlog::level::warn : spdlog::level::debug,
                    "http: closed {} connection(s) ({}; deadline {} s, cap {}); {} open", total,
                    what, kPhaseDeadline.count(), kMaxConnections, open);
        last_report = now;
    }
}

int socket_of(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

void on_connection(void* cls, MHD_Connection* connection, void**,
                   MHD_ConnectionNotificationCode code) {
    auto& impl = *static_cast<Server*>(cls);
    int fd = socket_of(connection);
    std::lock_guard<std::mutex> lock(impl.guard_mutex);
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        impl.cut(impl.guard.opened(fd, std::chrono::steady_clock::now()));
    else
        impl.guard.closed(fd);
}

void on_request_done(void* cls, MHD_Connection* connection, void** request,
                     MHD_RequestTerminationCode) {
    auto& impl = *static_cast<Server*>(cls);
    *request = nullptr;
    std::lock_guard<std::mutex> lock(impl.guard_mutex);
    impl.guard.request_finished(socket_of(connection), std::chrono::steady_clock::now());
}

// libmicrohttpd calls this first when the request line and headers are in, then with the body
// in pieces, then once with none left. A response queued on the first call closes the
// connection after it (the body is never read): right for methods we do not serve. GET and HEAD
// are answered on the last call, which keeps the connection alive for the next request.
MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method,
                      const char*, const char*, size_t* body_size, void** request) {
    auto& impl = *static_cast<Server*>(cls);
    bool served = std::strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                  std::strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (*request == nullptr) {
        static int in_request;
        *request = &in_request;  // makes libmicrohttpd call on_request_done when it ends
        {
            std::lock_guard<std::mutex> lock(impl.guard_mutex);
            impl.guard.request_started(socket_of(connection), std::chrono::steady_clock::now());
        }
        if (served)
            return MHD_YES;
    } else if (*body_size != 0) {
        *body_size = 0;  // a GET with a body: dropped (the 10 s response deadline bounds it)
        return MHD_YES;
    }
    Response res;
    try {
        res = impl.route(method, url);
    } catch (const std::exception& e) {
        res = {500, "{\"error\":" + json_string(e.what()) + "}", "application/json"};
    } catch (...) {
        res = {500, "{\"error\":\"unknown error\"}", "application/json"};
    }
    MHD_Response* response = MHD_create_response_from_buffer(
        res.body.size(), const_cast<char*>(res.body.data()), MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;  // out of memory: libmicrohttpd closes the connection
    if (res.content_type)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, res.content_type);
    if (res.no_store)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_Result queued = MHD_queue_response(connection, res.status, response);
    MHD_destroy_response(response);
    return queued;
}

void on_library_message(void*, const char* format, va_list args) {
    char line[512];
    std::vsnprintf(line, sizeof line, format, args);
    std::string_view text(line);
    while (!text.empty() && text.back() == '\n')
        text.remove_suffix(1);
    spdlog::debug("http: libmicrohttpd: {}", text);
}

// A listening socket on host:port, bound as the endpoints always were: the first address of
// getaddrinfo(host) that binds; an IPv6 socket also takes IPv4 (IPV6_V6ONLY off). SO_REUSEADDR
// (a restart binds while old connections linger in TIME_WAIT), not SO_REUSEPORT: a second
// process on the same port is an error, not a silent sharer.
int listen_on(const std::string& host, int port, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    if (int rc =
            getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
        rc != 0) {
        error = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    error = "no address";
    for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            error = std::strerror(errno);
            continue;
        }
        int yes = 1, no = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (a->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
            error = std::strerror(errno);
            ::close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    return fd;
}

}  // namespace

struct HttpServer::Impl : Server {
    using Server::Server;
};

HttpServer::HttpServer(const Supervisor& supervisor, const StatusSampler& sampler, std::string host,
                       int port)
    : impl_(new Impl(supervisor, sampler, std::move(host), port)) {}

HttpServer::~HttpServer() {
    stop();
}

void HttpServer::start() {
    Impl& impl = *impl_;
    std::string address =
        (impl.host.find(':') != std::string::npos ? "[" + impl.host + "]" : impl.host) + ":" +
        std::to_string(impl.port);
    std::string error;
    int fd = listen_on(impl.host, impl.port, error);
    if (fd < 0)
        throw std::runtime_error("http.listen " + address + ": cannot listen: " + error);
    // One polling thread on epoll: a connection costs a few KiB and no thread, so slow or idle
    // clients cannot take the thread a probe needs; handlers only read snapshots (milliseconds).
    impl.daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
        &on_request, static_cast<Server*>(&impl),  //
        MHD_OPTION_LISTEN_SOCKET, fd,              //
        MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(kMaxConnections + kConnectionHeadroom),
        MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(kPhaseDeadline.count()),  //
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,                         //
        MHD_OPTION_NOTIFY_CONNECTION, &on_connection, static_cast<Server*>(&impl),     //
        MHD_OPTION_NOTIFY_COMPLETED, &on_request_done, static_cast<Server*>(&impl),    //
        MHD_OPTION_EXTERNAL_LOGGER, &on_library_message, nullptr,                      //
        MHD_OPTION_END);
    if (!impl.daemon) {
        ::close(fd);
        throw std::runtime_error("http.listen " + address +
                                 ": cannot start the HTTP server (libmicrohttpd)");
    }
    impl.sweeper = std::thread([&impl] { impl.sweep(); });
    spdlog::info("http: serving /metrics, /healthz, /readyz, /api/status and / on {}", address);
}

void HttpServer::note_stopping() {
    impl_->stopping = true;
}

void HttpServer::stop() {
    Impl& impl = *impl_;
    if (!impl.daemon)
        return;
    {
        std::lock_guard<std::mutex> lock(impl.sweeper_mutex);
        impl.sweeper_stop = true;
    }
    impl.sweeper_wake.notify_all();
    impl.sweeper.join();
    // Closes the listening socket and every connection, and joins the polling thread.
    MHD_stop_daemon(impl.daemon);
    impl.daemon = nullptr;
}

}  // namespace rmq2pg
