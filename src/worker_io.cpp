// How a worker meets its peers without ever waiting on them forever: connecting the writer, the
// write guard around every PostgreSQL call (heartbeats go on, the call is cut at its deadline),
// the backoff wait that keeps the source alive, releasing the buffers of a huge batch, and the
// readings other threads see (state, progress, commits). The loop itself is in worker.cpp.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "dead_letter.h"
#include "worker.h"

#include "columns_by_name.h"
#include "worker_internal.h"

namespace rmq2pg {

namespace {

// The guard's keep-alive of `source` (runs on the guard's thread). A failure is not the guard's
// to handle: the worker meets the broken connection at its next call and reconnects.
std::function<void()> keep_alive_of(Source* source, bool& failed) {
    return [source, &failed] {
        if (failed || source == nullptr)
            return;
        try {
            source->keep_alive();
        } catch (const AmqpError&) {
            failed = true;
        }
    };
}

// The guard's reading ahead from `source` (runs on the guard's thread, every kReadAheadSlice):
// a source that reads ahead also keeps itself alive and keeps its own failures.
std::function<void()> read_ahead_of(Source* source) {
    return [source] { source->read_ahead(worker_detail::kReadAheadSlice); };
}

}  // namespace

using worker_detail::kIdlePoll;
using worker_detail::ShutdownDeadline;

std::string Worker::identity() const {
    return "[" + pipeline_.name + "/" + std::to_string(index_) + "]";
}

void Worker::set_state(WorkerState state) {
    WorkerState old = state_.exchange(state);
    if (old != state && (state != WorkerState::writing && old != WorkerState::writing))
        spdlog::debug("{} state {} -> {}", identity(), to_string(old), to_string(state));
}

// Published for the HTTP server's in-flight gauge and the wedged-worker health check.
void Worker::note_progress(const Batch& batch, const Backlog& backlog,
                           std::chrono::steady_clock::time_point now) {
    in_flight_.store(batch.size() + backlog.deliveries.size());
    last_progress_.store(now.time_since_epoch().count());
}

// Observes one committed write: its size and duration, and each message's end-to-end latency
// from its AMQP timestamp (seconds since the epoch, set by the publisher) when it has one.
void Worker::record_commit(const Batch& batch, const Batch::Part& part,
                           std::chrono::steady_clock::time_point started) {
    metrics_.commit_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    metrics_.batch_size.observe(static_cast<double>(part.size()));
    auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    for (std::size_t i : part)
        if (auto ts = batch.messages()[i].delivery.timestamp)
            metrics_.latency_seconds.observe(
                static_cast<double>(std::max<std::int64_t>(0, now_s - *ts)));
    metrics_.committed += part.size();
    auto targets = pipeline_.targets();
    for (std::size_t i : part) {
        const Batch::Message& m = batch.messages()[i];
        if (m.truncates)
            spdlog::warn(
                "{} truncate event (tag {}, position {}) applied (on_truncate: truncate): table "
                "{} truncated in the batch's transaction, before the batch's newer changes",
                identity(), m.delivery.delivery_tag, m.version.empty() ? "none" : m.version,
                targets.at(m.target)->qualified_table());
    }
}

void Worker::count_mapping_outcomes(const Batch& batch) {
    for (const auto& m : batch.messages()) {
        if (!m.skipped)
            continue;
        metrics_.skipped_events++;
        if (m.reason == "truncate")
            spdlog::warn(
                "{} truncate event (tag {}) ignored (on_truncate: ignore): the table "
                "keeps its rows",
                identity(), m.delivery.delivery_tag);
    }
    for (auto& mapper : mappers_) {
        std::uint64_t unmapped = mapper.take_unmapped();
        if (unmapped == 0)
            continue;
        metrics_.unmapped_fields += unmapped;
        if (!metrics_.unmapped_logged.exchange(true))
            spdlog::warn(
                "{} field '{}' has no column of the same name in the table: ignored "
                "(rmq2pg_unmapped_fields_total counts such fields; logged once)",
                identity(), mapper.first_unmapped());
    }
}

void Worker::connect_writer() {
    set_state(WorkerState::connecting);
    disconnect_writer();
    writer_ = endpoints_->open_writer();
    // libpq's connect_timeout bounds the connect; the catalog reads after it get a write's time.
    try {
        guarded(std::chrono::seconds(config_.postgres_connect_timeout_s) +
                    std::chrono::milliseconds(config_.postgres_write_timeout_ms),
                "connecting to PostgreSQL", "postgres.connect_timeout_s + write_timeout_ms",
                [&] { writer_->connect(); });
    } catch (...) {
        // A writer whose catalog was never read must not stay: callers that retry a failure
        // of any kind (a pooled connect that waited too long for the pool is transient) test
        // `writer_` and would write through it without tables.
        disconnect_writer();
        throw;
    }
    auto tables = table_targets(pipeline_);
    std::vector<const TableSchema*> schemas;
    bool all_exist = true;
    for (std::size_t t = 0; t < tables.size(); ++t) {
        schemas.push_back(&writer_->table(t));
        all_exist = all_exist && schemas.back()->exists;
    }
    // A table schema_evolution: basic has still to create has no mapper: evolve_schema()
    // settles the batch's changes until one creates it.
    for (std::size_t t = 0; t < pipeline_.targets().size() && all_exist; ++t)
        mappers_.emplace_back(pipeline_, tables, t, schemas);
    database_connected_ = true;
    metrics_.pg_connects++;
    std::string described = writer_->describe();
    spdlog::info("{} connected to PostgreSQL ({}){}{}", identity(),
                 mask_url_password(config_.postgres_url), described.empty() ? "" : "; ", described);
}

void Worker::connect_writer_retrying(const Batch& batch, Backlog& backlog) {
    while (!writer_) {
        try {
            connect_writer();
        } catch (const WriteError& e) {
            std::string reason = bounded_reason(e.what(), config_.log_redact_values);
            spdlog::error("{} database ({}): {}", identity(), to_string(e.kind()), reason);
            metrics_.last_error.set(identity() + " database: " + reason);
            disconnect_writer();
            wait(backoff_.next_delay(), &backlog, &batch);
        }
    }
}

void Worker::disconnect_writer() {
    writer_.reset();
    mappers_.clear();
    database_connected_ = false;
}

// A batch far above max_bytes (one huge message) leaves buffers at its high-water size: the
// batch's row buffers, the JSON parser's, libpq's output buffer. Above this they are released.
std::size_t Worker::large_batch_bytes() const {
    return std::max<std::size_t>(2 * pipeline_.batch.max_bytes, 16 * 1024 * 1024);
}

void Worker::release_large_buffers(Batch& batch) {
    batch.release();
    // The writer's connection holds libpq's grown buffers and the mappers their parsers': the
    // next batch reconnects (one connect per huge batch) and builds both anew.
    disconnect_writer();
    malloc_trim(0);
    spdlog::info("{} released the buffers of a large batch; reconnecting to PostgreSQL",
                 identity());
}

void Worker::guarded(std::chrono::milliseconds timeout, const char* what, const char* limit,
                     const std::function<void()>& call) {
    auto started = std::chrono::steady_clock::now();
    writing_since_.store(started.time_since_epoch().count());
    Source* source = source_.get();
    std::string reason = std::string(what) + " took longer than " +
                         std::to_string(timeout.count()) + " ms (" + limit + ")";
    auto period = source ? source->keep_alive_interval() : std::chrono::milliseconds(0);
    bool keep_alive_failed = false;
    bool reads_ahead = source != nullptr && source->reads_ahead();
    {
        auto watch = guard_.watch(
            started + timeout, [this, &reason] { writer_->interrupt(reason); },
            reads_ahead ? worker_detail::kReadAheadSlice : period,
            reads_ahead ? read_ahead_of(source) : keep_alive_of(source, keep_alive_failed));
        try {
            call();
        } catch (...) {
            writing_since_.store(0);
            throw;
        }
    }
    writing_since_.store(0);
}

void Worker::keep_source_alive_during(const std::function<void()>& call) {
    Source* source = source_.get();
    auto period = source ? source->keep_alive_interval() : std::chrono::milliseconds(0);
    bool keep_alive_failed = false;
    auto watch = guard_.watch(
        WriteGuard::Clock::time_point::max(), [] {}, period,
        keep_alive_of(source, keep_alive_failed));
    call();
}

void Worker::wait(std::chrono::milliseconds delay, Backlog* backlog, const Batch* batch) {
    set_state(WorkerState::backing_off);
    auto until = std::chrono::steady_clock::now() + delay;
    auto keep_alive_every = source_ ? source_->keep_alive_interval() : std::chrono::milliseconds(0);
    auto next_keep_alive = std::chrono::steady_clock::now();
    static const Batch kNoBatch;
    static const Backlog kNoBacklog;
    const Batch& held_batch = batch ? *batch : kNoBatch;
    const Backlog& held_backlog = backlog ? *backlog : kNoBacklog;
    while (std::chrono::steady_clock::now() < until) {
        note_progress(held_batch, held_backlog);
        // A caller that hands its batch is retrying it: that batch is held even when empty.
        bool holding = batch != nullptr || !held_backlog.deliveries.empty();
        if (stop_.requested.load() && !holding)
            return;
        if (stop_.past_deadline() && holding)
            throw ShutdownDeadline{};
        auto slice = std::min(kIdlePoll, std::chrono::ceil<std::chrono::milliseconds>(
                                             until - std::chrono::steady_clock::now()));
        bool room = backlog && held_bytes(held_batch, *backlog) < pipeline_.max_inflight_bytes;
        if (source_ && room) {
            if (auto delivery = source_->next(slice)) {
                metrics_.received++;
                backlog->bytes += delivery->body.size();
                backlog->deliveries.push_back(std::move(*delivery));
            }
            continue;
        }
        // Reading nothing (no backlog to keep it in, or max_inflight_bytes held): the source
        // must still be kept alive.
        std::this_thread::sleep_for(slice);
        if (source_ && keep_alive_every.count() > 0 &&
            std::chrono::steady_clock::now() >= next_keep_alive) {
            source_->keep_alive();
            next_keep_alive = std::chrono::steady_clock::now() + keep_alive_every;
        }
    }
}

}  // namespace rmq2pg
