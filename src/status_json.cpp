// The /api/status body (JSON): per pipeline its workers, counters, rates, queue depth, dead-letter
// queue and top reasons, recent commit latency, last error and the rate history the status page
// charts.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <string>

#include "health.h"
#include "http_bodies.h"
#include "json_escape.h"
#include "version.h"

#include "rfc3339.h"

namespace rmq2pg {

namespace {

// JSON has no NaN or infinity; rates and quantiles are finite by construction, this makes sure.
std::string json_number(double value) {
    if (!std::isfinite(value))
        return "null";
    return fmt::format("{:.3f}", value);
}

// The status page shows a short list; `rmq2pg dead-letters list` has them all.
constexpr std::size_t kTopReasons = 5;

}  // namespace

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
        if (s.is_stream) {
            // Per stream, as rmq2pg_state holds it: committed offset, owner, lease history.
            out += ",\"streams\":[";
            for (std::size_t k = 0; k < s.streams.size(); ++k) {
                const StreamReading& r = s.streams[k];
                out += k ? ",{\"stream\":" : "{\"stream\":";
                append_json_string(out, r.stream);
                out += ",\"next_offset\":" +
                       (r.next_offset ? std::to_string(*r.next_offset) : std::string("null"));
                out += ",\"owner\":";
                if (r.leased && !r.owner.empty())
                    append_json_string(out, r.owner);
                else
                    out += "null";
                out += ",\"lease_changes\":" + std::to_string(r.lease_changes);
                // The broker's side, when it told it: where the stream ends and the lag.
                const StreamEnd* end = find_stream_end(s.stream_ends, r.stream);
                auto end_offset = end ? end_offset_of(*end) : std::nullopt;
                auto lag = end ? stream_lag(*end, r.next_offset) : std::nullopt;
                out += ",\"end_offset\":" +
                       (end_offset ? std::to_string(*end_offset) : std::string("null"));
                out += ",\"lag\":" + (lag ? std::to_string(*lag) : std::string("null"));
                if (end && end->known)
                    put(",\"end_at\":\"{}\"", rfc3339(end->at));
                else
                    out += ",\"end_at\":null";
                out += ",\"end_error\":";
                if (end && !end->error.empty())
                    append_json_string(out, end->error);
                else
                    out += "null";
                out += "}";
            }
            out += "],\"streams_error\":";
            if (s.streams_error.empty())
                out += "null";
            else
                append_json_string(out, s.streams_error);
        }
        // The dead-letter queue and why messages went there lately: reason groups only (the
        // values folded out), never a body.
        out += ",\"dead_letters\":{\"queue\":";
        if (s.dead_letter_queue_name.empty())
            out += "null";
        else
            append_json_string(out, s.dead_letter_queue_name);
        if (s.dead_letter_queue.known)
            put(",\"messages\":{},\"at\":\"{}\"", s.dead_letter_queue.messages,
                rfc3339(s.dead_letter_queue.at));
        else
            out += ",\"messages\":null,\"at\":null";
        out += ",\"top_reasons_last_hour\":[";
        auto reasons = m.dead_letter_reasons.top(kTopReasons, now);
        for (std::size_t r = 0; r < reasons.size(); ++r) {
            out += r > 0 ? ",{\"reason\":" : "{\"reason\":";
            append_json_string(out, reasons[r].reason);
            put(",\"count\":{}}}", reasons[r].count);
        }
        out += "]}";
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

}  // namespace rmq2pg
