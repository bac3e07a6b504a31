// run_daemon (daemon.h): logging, signals blocked and turned into events of the main loop
// (sigtimedwait: never work inside a handler), the connection budget checked before any worker
// starts, the supervisor with its workers, the status
// sampler and HTTP endpoints, systemd notifications, then an orderly stop within
// shutdown_timeout_ms.
#include "daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "cli.h"
#include "connection_budget.h"
#include "health.h"
#include "http_server.h"
#include "logging.h"
#include "pg_budget.h"
#include "status_sampler.h"
#include "supervisor.h"
#include "systemd_notify.h"
#include "version.h"

namespace rmq2pg {

namespace {

// Every thread started afterwards inherits the blocked mask, so only the main loop sees them.
sigset_t block_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return signals;
}

void log_start(const Config& config) {
    spdlog::info("rmq2pg {} starting: {} pipeline(s), broker {}, database {}", RMQ2PG_VERSION,
                 config.pipelines.size(), config.amqp_urls.front().masked(),
                 mask_url_password(config.postgres_url));
    for (const auto& p : config.pipelines)
        spdlog::info("pipeline '{}': queue '{}' -> table {}, {} worker(s), mode {}, on_error {}",
                     p.name, p.queue, p.qualified_table(), p.workers, to_string(p.mode),
                     to_string(p.on_error));
}

// A reload that needs more PostgreSQL connections than the running config asks the server for
// the difference (the running workers' connections are already among its "in use"). A server
// that turns the probe away for lack of slots is a "no" too; one that cannot be asked is a
// warning, as at start.
bool reload_budget_allows(const Config& running, const Config& next) {
    int more = connections_needed(next) - connections_needed(running);
    if (more <= 0)
        return true;
    BudgetProbe probe = probe_server_connections(
        next.postgres_url, std::chrono::seconds(next.postgres_connect_timeout_s));
    if (probe.outcome != BudgetProbe::Outcome::measured) {
        if (probe.outcome == BudgetProbe::Outcome::unreachable &&
            connect_failure_is_full(probe.reason)) {
            spdlog::error(
                "reload: connection budget: the new config needs {} more PostgreSQL "
                "connection(s) and PostgreSQL at {} has no free slot: {}",
                more, probe.server, probe.reason);
            return false;
        }
        spdlog::warn("reload: connection budget not checked ({} more connection(s) needed): {}",
                     more, probe.reason);
        return true;
    }
    BudgetVerdict verdict =
        judge_connection_budget(more, probe.numbers, connections_needed_why(next));
    if (verdict.ok) {
        spdlog::info("reload: connection budget: {} more: {}", more, verdict.message);
        return true;
    }
    spdlog::error("reload: connection budget: {} more than the running config: {}", more,
                  verdict.message);
    return false;
}

// SIGHUP: read the file again; an invalid one changes nothing (the daemon keeps running the
// config it has). The caller sends READY=1 once every worker consumes again.
void reload(const std::string& path, Supervisor& supervisor, SystemdNotifier& systemd) {
    spdlog::info("SIGHUP received: reloading {}", path);
    systemd.reloading();
    systemd.status("reloading " + path);
    Config next;
    try {
        next = load_config_file(path);
    } catch (const ConfigError& e) {
        for (const auto& problem : e.problems())
            spdlog::error("reload: {}", problem);
        spdlog::error("reload refused: {} has {} problem(s); still running the previous config",
                      path, e.problems().size());
        return;
    }
    if (!reload_budget_allows(*supervisor.config(), next)) {
        spdlog::error("reload refused: still running the previous config");
        return;
    }
    supervisor.reload(std::move(next));
}

// Before any worker starts: may the config's connections be taken? False only for a measured
// "no" (the caller exits 78, nothing consumed); a check that cannot run is a warning.
bool connection_budget_allows_start(const Config& config) {
    BudgetProbe probe = probe_server_connections(
        config.postgres_url, std::chrono::seconds(config.postgres_connect_timeout_s));
    switch (probe.outcome) {
        case BudgetProbe::Outcome::unreachable:
            spdlog::warn(
                "connection budget not checked: PostgreSQL at {} not reachable ({}); starting, "
                "the workers retry",
                probe.server, probe.reason);
            return true;
        case BudgetProbe::Outcome::refused:
            spdlog::warn(
                "connection budget not checked: PostgreSQL at {} refused role '{}' ({}); "
                "starting, the workers retry",
                probe.server, probe.role, probe.reason);
            return true;
        case BudgetProbe::Outcome::unmeasured:
            spdlog::warn("connection budget not checked: {}", probe.reason);
            return true;
        case BudgetProbe::Outcome::measured:
            break;
    }
    BudgetVerdict verdict = judge_connection_budget(connections_needed(config), probe.numbers,
                                                    connections_needed_why(config));
    if (verdict.ok) {
        spdlog::info("connection budget: {}", verdict.message);
        return true;
    }
    spdlog::critical("connection budget: {}; not starting", verdict.message);
    return false;
}

// What the main loop runs beside: the parts it ticks, notifies and finally stops.
struct Services {
    Supervisor& supervisor;
    StatusSampler& sampler;
    HttpServer* http;  // null without http.listen
    SystemdNotifier& systemd;
};

// Waits for signals one tick at a time (1 s, shorter when the watchdog needs it); between them
// sends READY=1 when owed, pings the watchdog while no worker is wedged, enforces
// startup_timeout_s and logs progress every 10 s. Returns on SIGTERM/SIGINT (0) or when
// startup_timeout_s passed without every worker consuming (1).
int event_loop(const std::string& config_path, const Config& config, const sigset_t& signals,
               Services s) {
    auto wedge_threshold = rmq2pg::wedge_threshold(config.shutdown_timeout_ms);
    auto started = std::chrono::steady_clock::now();
    auto last_progress = started;
    bool ever_ready = false;
    bool ready_due = true;  // READY=1 is owed: at start, and after every SIGHUP
    while (true) {
        auto tick_ms = s.systemd.tick().count();
        timespec tick{tick_ms / 1000, (tick_ms % 1000) * 1000000};
        int sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            spdlog::info("{} received: finishing open batches (timeout {} ms)",
                         sig == SIGTERM ? "SIGTERM" : "SIGINT",
                         s.supervisor.config()->shutdown_timeout_ms);
            s.systemd.stopping();
            s.systemd.status("stopping: finishing open batches");
            if (s.http)
                s.http->note_stopping();
            return kExitOk;
        }
        if (sig == SIGHUP) {
            reload(config_path, s.supervisor, s.systemd);
            wedge_threshold = rmq2pg::wedge_threshold(s.supervisor.config()->shutdown_timeout_ms);
            ready_due = true;
        }
        auto now = std::chrono::steady_clock::now();
        if (ready_due && s.supervisor.all_consuming()) {
            spdlog::info("ready: every worker is consuming");
            ready_due = false;
            ever_ready = true;
            s.systemd.ready();
        }
        s.systemd.watchdog(check_liveness(s.supervisor.worker_readings(), wedge_threshold, now).ok,
                           now);
        if (!ever_ready && config.startup_timeout_s > 0 &&
            now - started > std::chrono::seconds(config.startup_timeout_s)) {
            spdlog::critical(
                "not every worker could connect within startup_timeout_s={}; "
                "exiting",
                config.startup_timeout_s);
            return kExitFailure;
        }
        if (now - last_progress >= std::chrono::seconds(10)) {
            s.supervisor.log_progress();
            s.systemd.status(s.sampler.summary());
            last_progress = now;
        }
    }
}

// Stops the workers within shutdown_timeout_ms and says how it went; `exit_code` is the loop's.
int shut_down(Services s, int exit_code) {
    bool clean = s.supervisor.stop();
    s.sampler.stop();
    if (s.http)
        s.http->stop();
    s.supervisor.log_progress();
    if (!clean) {
        spdlog::error(
            "shutdown timeout: some workers did not stop; exiting anyway (their "
            "unacked messages return to the queue)");
        spdlog::shutdown();
        std::_Exit(kExitFailure);  // detached workers still run: skip static destructors
    }
    if (s.supervisor.abandoned_work()) {
        spdlog::error(
            "stopped; some messages could not be committed within shutdown_timeout_ms "
            "and were left unacked (they return to the queue)");
        return kExitFailure;
    }
    spdlog::info("stopped cleanly");
    return exit_code;
}

}  // namespace

int run_daemon(const std::string& config_path, const Config& config) {
    init_logging(config.log_level, config.log_format);
    sigset_t signals = block_signals();
    log_start(config);
    if (!connection_budget_allows_start(config))
        return kExitConfig;

    SystemdNotifier systemd;
    systemd.status("starting: connecting to the broker and the database");
    Supervisor supervisor(config);
    // Rates for STATUS= and /api/status; queue depth polling only when /metrics can show it.
    StatusSampler sampler(supervisor, config.http.enabled());
    std::unique_ptr<HttpServer> http;
    if (config.http.enabled()) {
        http =
            std::make_unique<HttpServer>(supervisor, sampler, config.http.host, config.http.port);
        try {
            http->start();
        } catch (const std::exception& e) {
            spdlog::critical("{}; exiting", e.what());
            return kExitFailure;
        }
    }
    supervisor.start();
    sampler.start();
    Services services{supervisor, sampler, http.get(), systemd};
    int exit_code = event_loop(config_path, config, signals, services);
    return shut_down(services, exit_code);
}

}  // namespace rmq2pg
