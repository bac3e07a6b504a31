// Observability without servers: histograms and their quantiles, rate sampling, liveness and
// readiness verdicts, repeated-line folding, the http/log config keys, and the /metrics and
// /api/status bodies of a supervisor that has not started.
#include <catch2/catch.hpp>

#include <string>

#include "config.h"
#include "health.h"
#include "http_bodies.h"
#include "json_escape.h"
#include "logging.h"
#include "metrics.h"
#include "status_sampler.h"
#include "supervisor.h"

using namespace rmq2pg;
using std::chrono::seconds;

namespace {

std::string config_text(const std::string& top_level) {
    return "amqp: { urls: [\"amqp://127.0.0.1:1/\"] }\n"          // 1
           "postgres: { url: \"postgresql://127.0.0.1:1/x\" }\n"  // 2
           "pipelines:\n"                                         // 3
           "  - name: orders\n"                                   // 4
           "    queue: \"orders \\\"eu\\\"\"\n"                   // 5
           "    workers: 2\n"                                     // 6
           "    table: public.orders\n"                           // 7
           "    columns: { id: /id }\n" +                         // 8
           top_level;                                             // 9…
}

std::string first_problem(const std::string& text) {
    try {
        load_config_text(text, "rmq2pg.yaml");
    } catch (const ConfigError& e) {
        return e.problems().front();
    }
    return "";
}

}  // namespace

TEST_CASE("a histogram counts each value in the first bucket whose bound holds it",
          "[observability]") {
    Histogram h{1, 10, 100};
    for (double v : {0.5, 1.0, 5.0, 10.0, 50.0, 1000.0})
        h.observe(v);
    auto s = h.snapshot();
    CHECK(s.counts == std::vector<std::uint64_t>{2, 2, 1, 1});
    CHECK(s.count == 6);
    CHECK(s.sum == Approx(1066.5));
}

TEST_CASE("histogram quantiles interpolate inside the bucket like histogram_quantile()",
          "[observability]") {
    Histogram h{0.01, 0.1, 1};
    for (int i = 0; i < 100; ++i)
        h.observe(i < 90 ? 0.005 : 0.5);  // 90 fast commits, 10 slow ones
    auto s = h.snapshot();
    CHECK(*s.quantile(0.5) == Approx(0.01 * 50.0 / 90.0));
    CHECK(*s.quantile(0.99) == Approx(0.1 + 0.9 * 9.0 / 10.0));
    CHECK_FALSE(Histogram{1}.snapshot().quantile(0.5).has_value());
    SECTION("a rank in the +Inf bucket answers the highest finite bound") {
        Histogram big{1};
        big.observe(5);
        CHECK(*big.snapshot().quantile(0.99) == 1);
    }
    SECTION("since() keeps only the observations made after the earlier snapshot") {
        auto before = h.snapshot();
        h.observe(0.05);
        auto recent = h.snapshot().since(before);
        CHECK(recent.count == 1);
        CHECK(*recent.quantile(0.5) == Approx(0.055));
    }
}

TEST_CASE("rates are computed between the newest sample and the oldest within the window",
          "[observability]") {
    using Sample = StatusSampler::Sample;
    auto t0 = std::chrono::system_clock::time_point(seconds(1000));
    std::vector<Sample> samples;
    for (int i = 0; i <= 10; ++i) {  // every 2 s, committed grows by 200 per sample
        Sample s;
        s.at = t0 + seconds(2 * i);
        s.committed = 200 * static_cast<std::uint64_t>(i);
        s.received = s.committed + 10;
        s.dead_lettered = static_cast<std::uint64_t>(i);
        samples.push_back(s);
    }
    auto rates = StatusSampler::rates_of(samples, seconds(10));
    CHECK(rates.committed == Approx(100));
    CHECK(rates.received == Approx(100));
    CHECK(rates.dead_lettered == Approx(0.5));
    CHECK(StatusSampler::rates_of({samples.front()}, seconds(10)).committed == 0);
}

namespace {

WorkerReading reading(std::string pipeline, int index, WorkerState state,
                      std::chrono::steady_clock::time_point last_progress) {
    WorkerReading r;
    r.pipeline = std::move(pipeline);
    r.index = index;
    r.state = state;
    r.last_progress = last_progress;
    return r;
}

}  // namespace

TEST_CASE("a worker is wedged only when consuming or writing without progress past the threshold",
          "[observability]") {
    auto now = std::chrono::steady_clock::time_point(seconds(100000));
    auto threshold = wedge_threshold(10000);
    CHECK(threshold == std::chrono::milliseconds(120000));  // 2 × max(10 s, 60 s)
    CHECK(wedge_threshold(90000) == std::chrono::milliseconds(180000));
    std::vector<WorkerReading> workers = {
        reading("orders", 0, WorkerState::consuming, now - seconds(1)),
        reading("orders", 1, WorkerState::backing_off,
                now - seconds(500)),  // an outage, not a hang
    };
    CHECK(check_liveness(workers, threshold, now).ok);
    workers.push_back(reading("orders", 2, WorkerState::writing, now - seconds(121)));
    auto verdict = check_liveness(workers, threshold, now);
    CHECK_FALSE(verdict.ok);
    REQUIRE(verdict.reasons.size() == 1);
    CHECK(verdict.reasons[0] == "orders/2 wedged: writing without progress for 121 s");
}

TEST_CASE("ready only when every worker consumes, with a reason per worker that does not",
          "[observability]") {
    auto now = std::chrono::steady_clock::now();
    std::vector<WorkerReading> workers = {
        reading("orders", 0, WorkerState::consuming, now),
        reading("orders", 1, WorkerState::writing, now),
    };
    CHECK(check_readiness(workers).ok);
    workers.push_back(reading("billing", 0, WorkerState::backing_off, now));
    auto verdict = check_readiness(workers);
    CHECK_FALSE(verdict.ok);
    CHECK(verdict.reasons == std::vector<std::string>{"billing/0 is backing_off"});
}

TEST_CASE("not ready while a worker has no database connection or writes past its deadline",
          "[observability]") {
    auto now = std::chrono::steady_clock::time_point(seconds(100000));
    auto w = reading("orders", 0, WorkerState::writing, now);
    w.write_timeout = std::chrono::milliseconds(3000);
    w.writing_since = now - std::chrono::milliseconds(2999);
    CHECK(check_readiness({w}, now).ok);
    w.writing_since = now - std::chrono::milliseconds(3500);
    auto verdict = check_readiness({w}, now);
    CHECK_FALSE(verdict.ok);
    CHECK(verdict.reasons ==
          std::vector<std::string>{
              "orders/0 has been writing for 3500 ms, past postgres.write_timeout_ms"});
    w.writing_since.reset();
    w.database_connected = false;
    CHECK(check_readiness({w}, now).reasons ==
          std::vector<std::string>{"orders/0 has no PostgreSQL connection"});
    // Liveness does not flip for it: a hung database is an outage, not a wedged daemon.
    CHECK(check_liveness({w}, wedge_threshold(10000), now).ok);
}

TEST_CASE("a long write deadline raises the wedge threshold of that worker", "[observability]") {
    auto now = std::chrono::steady_clock::time_point(seconds(100000));
    auto w = reading("orders", 0, WorkerState::writing, now - seconds(150));
    w.write_timeout = std::chrono::milliseconds(100000);
    CHECK(check_liveness({w}, wedge_threshold(10000), now).ok);
    w.last_progress = now - seconds(201);
    CHECK_FALSE(check_liveness({w}, wedge_threshold(10000), now).ok);
}

TEST_CASE("a repeated error line is written once per 10 s window, then summarised",
          "[observability]") {
    RepeatFilter filter;
    auto t = std::chrono::steady_clock::time_point(seconds(5000));
    CHECK(filter.admit("db down", 4, t));
    CHECK(filter.admit("other", 4, t));  // a different text is not a repeat
    CHECK_FALSE(filter.admit("db down", 4, t + seconds(1)));
    CHECK_FALSE(filter.admit("db down", 4, t + seconds(9)));
    CHECK(filter.expire(t + seconds(9)).empty());
    auto summaries = filter.expire(t + seconds(10));
    REQUIRE(summaries.size() == 1);  // "other" had no repeats: nothing to say about it
    CHECK(summaries[0].first_line == "db down");
    CHECK(summaries[0].repeats == 2);
    CHECK(repeat_summary(summaries[0]) == "db down (repeated 2 times in the last 10 s)");
    CHECK(filter.admit("db down", 4, t + seconds(11)));  // a new window starts
    SECTION("drain() summarises windows still open at shutdown") {
        CHECK_FALSE(filter.admit("db down", 4, t + seconds(12)));
        auto left = filter.drain();
        REQUIRE(left.size() == 1);
        CHECK(left[0].repeats == 1);
    }
}

TEST_CASE("a line's kind sets aside its worker identity, numbers and quoted values",
          "[observability]") {
    CHECK(fold_key("[orders_17/3] batch of 250 (tags 1..250) not written, retrying in 400 ms") ==
          "[*] batch of # (tags #..#) not written, retrying in # ms");
    CHECK(fold_key("[a/0] database (schema): relation \"public.t_9\" does not exist") ==
          fold_key("[b/1] database (schema): relation \"x\" does not exist"));
    CHECK(fold_key("[a/0] queue 'a.dead' is gone") == "[*] queue '' is gone");
    SECTION("different wording stays a different kind") {
        CHECK(fold_key("[a/0] database (connection): refused") !=
              fold_key("[a/0] broker: refused"));
    }
    SECTION("an unpaired quote (an apostrophe) is text, not a value") {
        CHECK(fold_key("can't connect") == "can't connect");
    }
    SECTION("a bracket without pipeline/worker is not an identity") {
        CHECK(fold_key("[note] 5") == "[note] #");
    }
}

TEST_CASE("200 pipelines failing alike write 8 workers' lines and one summary per window",
          "[observability]") {
    RepeatFilter filter;
    auto t = std::chrono::steady_clock::time_point(seconds(5000));
    int written = 0;
    std::vector<RepeatFilter::Summary> summaries;
    // Every worker of every pipeline retries once a second for 60 s, with its own numbers; the
    // sink asks for ended windows before each line, as RepeatFoldingSink does.
    for (int second = 0; second < 60; ++second)
        for (int p = 0; p < 200; ++p) {
            auto now = t + seconds(second);
            for (auto& s : filter.expire(now))
                summaries.push_back(std::move(s));
            std::string line = "[orders_" + std::to_string(p) + "/0] database (connection): " +
                               "connection to server at \"127.0.0.1\", port 5432 failed: " +
                               "remaining connection slots are reserved (attempt " +
                               std::to_string(second) + ")";
            written += filter.admit(line, 4, now) ? 1 : 0;
        }
    for (auto& s : filter.drain())
        summaries.push_back(std::move(s));
    CHECK(written == 6 * 8);         // 8 workers' lines per 10 s window instead of 12 000
    REQUIRE(summaries.size() == 6);  // and one summary per window
    const auto& s = summaries.front();
    CHECK(s.repeats == 10 * 200 - 8);
    CHECK(s.workers == 200);
    CHECK(s.pipelines.size() == 200);
    CHECK(s.first_line.rfind("[orders_0/0] ", 0) == 0);
    CHECK(repeat_summary(s) ==
          s.first_line +
              " (repeated 1992 times in the last 10 s, from 200 pipelines (200 workers): "
              "orders_0, orders_1, orders_2, orders_3, orders_4, …)");
}

TEST_CASE("the workers of one pipeline are counted as one pipeline", "[observability]") {
    RepeatFilter filter;
    auto t = std::chrono::steady_clock::time_point(seconds(5000));
    CHECK(filter.admit("[orders/0] broker: connection refused", 4, t));
    // Each worker's own first line is written: which worker lost what stays readable.
    CHECK(filter.admit("[orders/1] broker: connection refused", 4, t + seconds(1)));
    CHECK_FALSE(filter.admit("[orders/1] broker: connection refused", 4, t + seconds(2)));
    auto summaries = filter.expire(t + seconds(10));
    REQUIRE(summaries.size() == 1);
    CHECK(repeat_summary(summaries[0]) ==
          "[orders/0] broker: connection refused (repeated 1 times in the last 10 s, from 1 "
          "pipeline (2 workers): orders)");
}

TEST_CASE("new kinds beyond the tracked limit pass unfolded rather than grow memory",
          "[observability]") {
    RepeatFilter filter;
    auto t = std::chrono::steady_clock::time_point(seconds(5000));
    for (std::size_t i = 0; i < RepeatFilter::kMaxTracked; ++i)
        CHECK(filter.admit("kind " + std::string(i % 26 + 1, 'a') + std::string(i / 26 + 1, 'z'), 4,
                           t));
    CHECK(filter.admit("one more kind", 4, t));
    CHECK(filter.admit("one more kind", 4, t));  // not tracked: written each time
}

TEST_CASE("JSON strings escape quotes, backslashes and control characters", "[observability]") {
    CHECK(json_string("relation \"t\" does not exist\n\tC:\\x\x01") ==
          "\"relation \\\"t\\\" does not exist\\n\\tC:\\\\x\\u0001\"");
}

TEST_CASE("http.listen takes host:port and is off when absent", "[observability]") {
    CHECK_FALSE(load_config_text(config_text(""), "f").http.enabled());
    auto c = load_config_text(config_text("http: { listen: \"127.0.0.1:9187\" }\n"), "f");
    CHECK(c.http.enabled());
    CHECK(c.http.host == "127.0.0.1");
    CHECK(c.http.port == 9187);
    auto v6 = load_config_text(config_text("http: { listen: \"[::1]:80\" }\n"), "f");
    CHECK(v6.http.host == "::1");
    CHECK(v6.http.port == 80);
    CHECK(load_config_text(config_text("http: { listen: \"localhost:9187\" }\n"), "f").http.host ==
          "localhost");
}

TEST_CASE("a malformed http.listen is reported with file, line and key", "[observability]") {
    CHECK(first_problem(config_text("http: { listen: \"9187\" }\n")) ==
          "rmq2pg.yaml:9: http.listen: '9187': expected host:port, e.g. 127.0.0.1:9187 or "
          "[::1]:9187");
    CHECK(first_problem(config_text("http: { listen: \"127.0.0.1:0\" }\n")) ==
          "rmq2pg.yaml:9: http.listen: '127.0.0.1:0': port '0' is not a number in 1..65535");
    CHECK(first_problem(config_text("http: { listen: \"127.0.0.1:99999\" }\n")) ==
          "rmq2pg.yaml:9: http.listen: '127.0.0.1:99999': port '99999' is not a number in "
          "1..65535");
    CHECK(first_problem(config_text("http: { listen: \"::1:9187\" }\n")) ==
          "rmq2pg.yaml:9: http.listen: '::1:9187': IPv6 addresses need brackets: [::1]:9187");
    CHECK(first_problem(config_text("http: { listen: \"a b:1\" }\n")) ==
          "rmq2pg.yaml:9: http.listen: 'a b:1': 'a b' is not a host name or address");
    CHECK(first_problem(config_text("http: { port: 1 }\n"))
              .rfind("rmq2pg.yaml:9: http.port: unknown key", 0) == 0);
    CHECK(first_problem(config_text("http: {}\n")) == "rmq2pg.yaml:9: http.listen: is required");
}

TEST_CASE("log.format is text or json", "[observability]") {
    CHECK(load_config_text(config_text(""), "f").log_format == "text");
    CHECK(load_config_text(config_text("log: { format: json }\n"), "f").log_format == "json");
    CHECK(first_problem(config_text("log: { format: xml }\n")) ==
          "rmq2pg.yaml:9: log.format: 'xml' is not one of text, json");
}

TEST_CASE("/metrics names every counter, gauge and histogram per pipeline before any traffic",
          "[observability]") {
    Supervisor supervisor(load_config_text(config_text(""), "f"));
    StatusSampler sampler(supervisor, /*poll_queues=*/false);
    std::string text = render_metrics(supervisor, sampler);
    for (const char* line : {
             "# TYPE rmq2pg_messages_committed_total counter",
             "rmq2pg_messages_received_total{pipeline=\"orders\"} 0",
             "rmq2pg_messages_committed_total{pipeline=\"orders\"} 0",
             "rmq2pg_messages_dead_lettered_total{pipeline=\"orders\"} 0",
             "rmq2pg_messages_rejected_total{pipeline=\"orders\"} 0",
             "rmq2pg_messages_redelivered_total{pipeline=\"orders\"} 0",
             "rmq2pg_batches_committed_total{pipeline=\"orders\"} 0",
             "rmq2pg_write_failures_total{pipeline=\"orders\"} 0",
             "rmq2pg_amqp_connects_total{pipeline=\"orders\"} 0",
             "rmq2pg_pg_connects_total{pipeline=\"orders\"} 0",
             "rmq2pg_messages_in_flight{pipeline=\"orders\"} 0",
             "rmq2pg_workers{pipeline=\"orders\",state=\"starting\"} 2",
             "rmq2pg_workers{pipeline=\"orders\",state=\"consuming\"} 0",
             "# TYPE rmq2pg_commit_duration_seconds histogram",
             "rmq2pg_commit_duration_seconds_bucket{pipeline=\"orders\",le=\"0.001\"} 0",
             "rmq2pg_batch_size_bucket{pipeline=\"orders\",le=\"+Inf\"} 0",
             "rmq2pg_end_to_end_latency_seconds_count{pipeline=\"orders\"} 0",
             "rmq2pg_queue_poll_ok{pipeline=\"orders\"} 0",
             "# TYPE rmq2pg_stream_lag_messages gauge",
             "rmq2pg_ready 0",
             "rmq2pg_healthy 1",
             "rmq2pg_build_info{version=\"",
         }) {
        INFO(line);
        CHECK(text.find(line) != std::string::npos);
    }
}

TEST_CASE("/api/status escapes names and reports null where nothing is known yet",
          "[observability]") {
    Supervisor supervisor(load_config_text(config_text(""), "f"));
    StatusSampler sampler(supervisor, /*poll_queues=*/false);
    std::string json = render_status(supervisor, sampler);
    CHECK(json.find("\"queue\":\"orders \\\"eu\\\"\"") != std::string::npos);
    CHECK(json.find("\"queue_depth\":{\"messages\":null") != std::string::npos);
    CHECK(json.find("\"p50\":null,\"p99\":null") != std::string::npos);
    CHECK(json.find("\"last_error\":null") != std::string::npos);
    CHECK(json.find("\"ready\":false") != std::string::npos);
}

TEST_CASE("a reload replaces changed pipelines, keeps unchanged ones and their counters",
          "[observability]") {
    auto pipeline = [](const std::string& name, int max_messages) {
        return "  - name: " + name + "\n    queue: " + name + "\n    table: public." + name +
               "\n    columns: { id: /id }\n    batch: { max_messages: " +
               std::to_string(max_messages) + " }\n";
    };
    auto config = [](const std::string& pipelines, const std::string& retry = "100") {
        return "amqp: { urls: [\"amqp://127.0.0.1:1/\"] }\n"
               "postgres: { url: \"postgresql://127.0.0.1:1/x\" }\n"
               "retry: { initial_ms: " +
               retry + " }\npipelines:\n" + pipelines;
    };
    Supervisor supervisor(load_config_text(config(pipeline("a", 10) + pipeline("b", 10)), "f"));
    auto before = supervisor.pipelines();
    REQUIRE(before.size() == 2);

    SECTION("only the changed pipeline gets new workers; its metrics carry over") {
        supervisor.reload(load_config_text(config(pipeline("a", 10) + pipeline("b", 20)), "f"));
        auto after = supervisor.pipelines();
        REQUIRE(after.size() == 2);
        CHECK(after[0].workers == before[0].workers);
        CHECK(after[1].workers != before[1].workers);
        CHECK(after[1].config->batch.max_messages == 20);
        CHECK(after[1].metrics == before[1].metrics);
        // The views taken before the reload still point at live objects.
        CHECK(before[1].config->batch.max_messages == 10);
    }
    SECTION("a pipeline is added and another removed") {
        supervisor.reload(load_config_text(config(pipeline("a", 10) + pipeline("c", 10)), "f"));
        auto after = supervisor.pipelines();
        REQUIRE(after.size() == 2);
        CHECK(after[0].workers == before[0].workers);
        CHECK(after[1].config->name == "c");
    }
    SECTION("a change of the connection settings restarts every pipeline") {
        supervisor.reload(
            load_config_text(config(pipeline("a", 10) + pipeline("b", 10), "200"), "f"));
        auto after = supervisor.pipelines();
        REQUIRE(after.size() == 2);
        CHECK(after[0].workers != before[0].workers);
        CHECK(after[1].workers != before[1].workers);
        CHECK(supervisor.config()->retry.initial_ms == 200);
    }
}
