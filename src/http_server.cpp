// The observability endpoints; see http_server.h. The libmicrohttpd server, its connection
// bounds and the routing; the bodies of /metrics and /api/status are http_bodies.h's.
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
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "health.h"
#include "http_bodies.h"
#include "http_connection_guard.h"
#include "json_escape.h"
#include "status_page.h"

namespace rmq2pg {

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

// The "reasons" of a /healthz or /readyz body: a JSON array of strings.
void append_reasons(std::string& out, const std::vector<std::string>& reasons) {
    out += "[";
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (i > 0)
            out += ",";
        append_json_string(out, reasons[i]);
    }
    out += "]";
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
        auto status = sampler.snapshot();
        for (const auto& view : supervisor.pipelines()) {
            if (!view.config->is_stream())
                continue;
            const auto* s = StatusSampler::find(status, view.config->name);
            check_stream_owners(view.config->name, view.config->streams, s && s->streams_known,
                                s ? s->streams : std::vector<StreamReading>{}, verdict);
        }
        if (stopping.load()) {
            verdict.ok = false;
            verdict.reasons.insert(verdict.reasons.begin(), "shutting down");
        }
        std::string body = verdict.ok ? "{\"status\":\"ready\"" : "{\"status\":\"not ready\"";
        body += ",\"reasons\":";
        append_reasons(body, verdict.reasons);
        // Pooled mode: workers waiting for a PostgreSQL connection are ready (they consume and
        // write in turn), but whoever asks why batches are slow should see the queue for it.
        if (auto pool = supervisor.pg_pool())
            body += fmt::format(",\"pg_pool\":{{\"size\":{},\"in_use\":{},\"waiting\":{}}}",
                                pool->size(), pool->in_use(), pool->waiting());
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
