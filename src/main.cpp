// rmq2pg: RabbitMQ → PostgreSQL. main() is a checklist: parse the command line, load the
// config, set up logging and signals, start the workers, turn signals into events, stop.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "config.h"
#include "health.h"
#include "http_server.h"
#include "logging.h"
#include "pg_writer.h"
#include "status_sampler.h"
#include "supervisor.h"
#include "systemd_notify.h"
#include "version.h"

namespace {

// sysexits.h codes, which systemd and supervisors understand.
constexpr int kExitUsage = 64;
constexpr int kExitConfig = 78;

constexpr const char* kUsage =
    "usage: rmq2pg --config FILE          run until SIGTERM/SIGINT; SIGHUP reloads FILE\n"
    "       rmq2pg --check-config --config FILE\n"
    "                                     validate the file (and the tables, when PostgreSQL\n"
    "                                     is reachable); exit 0 valid, 78 invalid\n"
    "       rmq2pg --migrate --config FILE\n"
    "                                     create rmq2pg's own tables (dedupe inbox, delete\n"
    "                                     tombstones); idempotent\n"
    "       rmq2pg --version\n";

int check_config(const rmq2pg::Config& config) {
    // A reachable database lets us check tables, columns and unique keys too; an unreachable
    // one is not a config error, and is given up on after at most 5 s.
    auto settings = rmq2pg::PgConnectionSettings::of(config, "rmq2pg --check-config");
    settings.connect_timeout_s = std::min<std::int64_t>(settings.connect_timeout_s, 5);
    int status = 0;
    for (const auto& pipeline : config.pipelines) {
        try {
            rmq2pg::check_pipeline_against_database(settings, pipeline);
        } catch (const rmq2pg::WriteError& e) {
            if (e.kind() == rmq2pg::WriteError::Kind::connection) {
                std::fprintf(stderr, "%s: note: PostgreSQL not reachable, tables not checked: %s\n",
                             config.source_file.c_str(), e.what());
                return 0;
            }
            std::fprintf(stderr, "%s: pipelines '%s': %s\n", config.source_file.c_str(),
                         pipeline.name.c_str(), e.what());
            status = kExitConfig;
        }
    }
    if (status == 0)
        std::fprintf(stderr, "%s: valid\n", config.source_file.c_str());
    return status;
}

// SIGHUP: read the file again; an invalid one changes nothing (the daemon keeps running the
// config it has). The caller sends READY=1 once every worker consumes again.
void reload(const std::string& path, rmq2pg::Supervisor& supervisor,
            rmq2pg::SystemdNotifier& systemd) {
    spdlog::info("SIGHUP received: reloading {}", path);
    systemd.reloading();
    systemd.status("reloading " + path);
    rmq2pg::Config next;
    try {
        next = rmq2pg::load_config_file(path);
    } catch (const rmq2pg::ConfigError& e) {
        for (const auto& problem : e.problems())
            spdlog::error("reload: {}", problem);
        spdlog::error("reload refused: {} has {} problem(s); still running the previous config",
                      path, e.problems().size());
        return;
    }
    supervisor.reload(std::move(next));
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    bool migrate_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            config_path = arg.substr(9);
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "--migrate") {
            migrate_only = true;
        } else if (arg == "--version") {
            std::printf("rmq2pg %s\n", RMQ2PG_VERSION);
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "rmq2pg: unknown argument '%s'\n%s", arg.c_str(), kUsage);
            return kExitUsage;
        }
    }
    if (config_path.empty()) {
        std::fprintf(stderr, "rmq2pg: --config FILE is required\n%s", kUsage);
        return kExitUsage;
    }

    rmq2pg::Config config;
    try {
        config = rmq2pg::load_config_file(config_path);
    } catch (const rmq2pg::ConfigError& e) {
        for (const auto& problem : e.problems())
            std::fprintf(stderr, "%s\n", problem.c_str());
        return kExitConfig;
    }
    if (check_only)
        return check_config(config);
    if (migrate_only) {
        // Creates rmq2pg_state.inbox and rmq2pg_state.tombstones (sql/002_rmq2pg_state.sql);
        // idempotent.
        try {
            rmq2pg::migrate(rmq2pg::PgConnectionSettings::of(config, "rmq2pg --migrate"));
        } catch (const rmq2pg::WriteError& e) {
            std::fprintf(stderr, "rmq2pg --migrate: %s\n", e.what());
            return 1;
        }
        std::fprintf(
            stderr,
            "rmq2pg --migrate: rmq2pg_state.inbox and rmq2pg_state.tombstones are in place\n");
        return 0;
    }

    rmq2pg::init_logging(config.log_level, config.log_format);

    // Signals become events of the main loop (sigtimedwait), never work inside a handler; every
    // thread inherits the blocked mask, so only the main thread sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    spdlog::info("rmq2pg {} starting: {} pipeline(s), broker {}, database {}", RMQ2PG_VERSION,
                 config.pipelines.size(), config.amqp_urls.front().masked(),
                 rmq2pg::mask_url_password(config.postgres_url));
    for (const auto& p : config.pipelines)
        spdlog::info("pipeline '{}': queue '{}' -> table {}, {} worker(s), mode {}, on_error {}",
                     p.name, p.queue, p.qualified_table(), p.workers, rmq2pg::to_string(p.mode),
                     rmq2pg::to_string(p.on_error));

    rmq2pg::SystemdNotifier systemd;
    systemd.status("starting: connecting to the broker and the database");
    rmq2pg::Supervisor supervisor(config);
    // Rates for STATUS= and /api/status; queue depth polling only when /metrics can show it.
    rmq2pg::StatusSampler sampler(supervisor, config.http.enabled());
    std::unique_ptr<rmq2pg::HttpServer> http;
    if (config.http.enabled()) {
        http = std::make_unique<rmq2pg::HttpServer>(supervisor, sampler, config.http.host,
                                                    config.http.port);
        try {
            http->start();
        } catch (const std::exception& e) {
            spdlog::critical("{}; exiting", e.what());
            return 1;
        }
    }
    supervisor.start();
    sampler.start();
    auto wedge_threshold = rmq2pg::wedge_threshold(config.shutdown_timeout_ms);

    auto started = std::chrono::steady_clock::now();
    auto last_progress = started;
    bool ever_ready = false;
    bool ready_due = true;  // READY=1 is owed: at start, and after every SIGHUP
    int exit_code = 0;
    while (true) {
        auto tick_ms = systemd.tick().count();  // 1 s, shorter when the watchdog needs it
        timespec tick{tick_ms / 1000, (tick_ms % 1000) * 1000000};
        int sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            spdlog::info("{} received: finishing open batches (timeout {} ms)",
                         sig == SIGTERM ? "SIGTERM" : "SIGINT",
                         supervisor.config()->shutdown_timeout_ms);
            systemd.stopping();
            systemd.status("stopping: finishing open batches");
            if (http)
                http->note_stopping();
            break;
        }
        if (sig == SIGHUP) {
            reload(config_path, supervisor, systemd);
            wedge_threshold = rmq2pg::wedge_threshold(supervisor.config()->shutdown_timeout_ms);
            ready_due = true;
        }
        auto now = std::chrono::steady_clock::now();
        if (ready_due && supervisor.all_consuming()) {
            spdlog::info("ready: every worker is consuming");
            ready_due = false;
            ever_ready = true;
            systemd.ready();
        }
        systemd.watchdog(
            rmq2pg::check_liveness(supervisor.worker_readings(), wedge_threshold, now).ok, now);
        if (!ever_ready && config.startup_timeout_s > 0 &&
            now - started > std::chrono::seconds(config.startup_timeout_s)) {
            spdlog::critical(
                "not every worker could connect within startup_timeout_s={}; "
                "exiting",
                config.startup_timeout_s);
            exit_code = 1;
            break;
        }
        if (now - last_progress >= std::chrono::seconds(10)) {
            supervisor.log_progress();
            systemd.status(sampler.summary());
            last_progress = now;
        }
    }
    bool clean = supervisor.stop();
    sampler.stop();
    if (http)
        http->stop();
    supervisor.log_progress();
    if (!clean) {
        spdlog::error(
            "shutdown timeout: some workers did not stop; exiting anyway (their "
            "unacked messages return to the queue)");
        spdlog::shutdown();
        std::_Exit(1);  // detached workers still run: skip static destructors
    }
    if (supervisor.abandoned_work()) {
        spdlog::error(
            "stopped; some messages could not be committed within shutdown_timeout_ms "
            "and were left unacked (they return to the queue)");
        return 1;
    }
    spdlog::info("stopped cleanly");
    return exit_code;
}
