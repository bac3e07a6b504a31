// The worker loop. Design: a batch (batch.h) is filled from the source until the batch policy
// closes it, mapped to COPY rows once, and written in one transaction. Poison rows are isolated
// (the row PostgreSQL names in its COPY error, else bisection), the rest commits, poison messages
// are dead-lettered with publisher confirms, and only then is the batch settled up to its last
// delivery tag. Transient database failures keep the batch and retry with backoff while the
// source stays alive (deliveries that arrive meanwhile wait in a backlog bounded by prefetch and
// max_inflight_bytes). Every PostgreSQL call runs under the write guard: the broker connection
// keeps its heartbeats and the call is cut at postgres.write_timeout_ms. A broker failure drops
// everything unsettled: the broker redelivers it, so nothing is lost and nothing uncommitted is
// ever settled. The batch and the backlog live in serve(): an exception that leaves it drops
// them, as the broker does.
#include "worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "dead_letter.h"
#include "worker_internal.h"

namespace rmq2pg {

using worker_detail::kIdlePoll;
using worker_detail::Reassigned;
using worker_detail::ShutdownDeadline;

Worker::Worker(const Config& config, const PipelineConfig& pipeline, int index,
               const StopSignal& stop, PipelineMetrics& metrics,
               std::unique_ptr<Endpoints> endpoints)
    : config_(config),
      pipeline_(pipeline),
      index_(index),
      stop_(stop),
      metrics_(metrics),
      endpoints_(endpoints ? std::move(endpoints)
                           : std::make_unique<BrokerEndpoints>(config, pipeline, index)),
      backoff_(std::chrono::milliseconds(config.retry.initial_ms),
               std::chrono::milliseconds(config.retry.max_ms),
               static_cast<std::uint64_t>(getpid()) * 1000 + static_cast<std::uint64_t>(index)),
      policy_(pipeline.batch) {}

Worker::~Worker() = default;

void Worker::run() {
    spdlog::info(
        "{} started: {} '{}' -> table {} ({} mode, prefetch {}, batch {} msgs / {} "
        "bytes / {} ms)",
        identity(), pipeline_.is_stream() ? "streams" : "queue",
        pipeline_.is_stream() ? std::to_string(pipeline_.streams.size()) : pipeline_.queue,
        pipeline_.qualified_table(), to_string(pipeline_.mode), pipeline_.prefetch,
        pipeline_.batch.max_messages, pipeline_.batch.max_bytes, pipeline_.batch.max_delay_ms);
    while (!stop_.requested.load() && !paused_) {
        try {
            if (!writer_)
                connect_writer();
            if (!source_) {
                set_state(WorkerState::connecting);
                if (pipeline_.is_stream()) {
                    if (!open_stream_source())
                        continue;  // nothing to read now: it waited for its next round
                } else {
                    source_ = endpoints_->open_source();
                }
                metrics_.amqp_connects++;
                spdlog::info("{} consuming from {}", identity(), endpoints_->source_description());
            }
            backoff_.reset();
            serve();
        } catch (const Reassigned&) {
            drop_streams("the streams it holds changed");
        } catch (const AmqpError& e) {
            std::size_t held = in_flight_.exchange(0);
            if (e.kind() == AmqpError::Kind::conflict) {
                // Reconnecting would meet the same conflict forever: pause and say what differs.
                spdlog::critical(
                    "{} {}: the declaration in the config conflicts with what "
                    "exists; pipeline paused until the config or the broker is "
                    "fixed and rmq2pg restarted",
                    identity(), e.what());
                metrics_.last_error.set(identity() + " paused (declaration conflict): " + e.what());
                paused_ = true;
                continue;
            }
            if (held == 0)
                spdlog::error("{} broker: {}", identity(), e.what());
            else
                spdlog::error("{} broker: {}; {} unsettled messages return to the queue",
                              identity(), e.what(), held);
            metrics_.last_error.set(identity() + " broker: " + e.what());
            source_.reset();
            endpoints_->broker_failed();
            policy_.reset();
            wait(backoff_.next_delay(), nullptr);
        } catch (const WriteError& e) {
            std::string reason = bounded_reason(e.what(), config_.log_redact_values);
            if (e.kind() == WriteError::Kind::fenced) {
                spdlog::warn("{} {}", identity(), reason);
                drop_streams("a lease was lost");
                continue;
            }
            spdlog::error("{} database ({}): {}", identity(), to_string(e.kind()), reason);
            metrics_.last_error.set(identity() + " database: " + reason);
            disconnect_writer();
            // A stream resumes from what PostgreSQL holds: after a COMMIT of unknown outcome
            // that is the only way to neither lose nor repeat the batch.
            if (pipeline_.is_stream())
                drop_streams("the database failed");
            wait(backoff_.next_delay(), nullptr);
        } catch (const ShutdownDeadline&) {
            spdlog::error(
                "{} shutdown timeout: {} messages not committed; they return to the "
                "queue",
                identity(), in_flight_.exchange(0));
            stop_.abandoned = true;
            break;
        }
    }
    if (paused_) {
        source_.reset();  // returns the poison message to its queue
        set_state(WorkerState::paused);
        while (!stop_.requested.load())
            std::this_thread::sleep_for(kIdlePoll);
    }
    source_.reset();  // closes the connection: anything unsettled returns to the queue
    leave_streams();
    endpoints_->dead_letters().reset();
    disconnect_writer();
    set_state(WorkerState::stopped);
    spdlog::info("{} stopped", identity());
}

void Worker::serve() {
    // Worker 0 of a pipeline prunes the inbox and tombstones past their retention.
    bool prunes = index_ == 0 &&
                  (!pipeline_.dedupe.empty() || pipeline_.delete_when ||
                   std::any_of(pipeline_.routes.begin(), pipeline_.routes.end(),
                               [](const TargetConfig& r) { return r.delete_when.has_value(); }));
    auto prune_every = std::chrono::seconds(std::clamp<std::int64_t>(
        std::min(pipeline_.dedupe_retention_s, pipeline_.tombstone_retention_s) / 2, 1, 60));
    auto next_prune = std::chrono::steady_clock::now() + prune_every;
    Batch batch;
    Backlog backlog;
    while (true) {
        if (prunes && writer_ && std::chrono::steady_clock::now() >= next_prune) {
            next_prune = std::chrono::steady_clock::now() + prune_every;
            try {
                guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms),
                        "pruning the inbox and tombstones", "postgres.write_timeout_ms",
                        [&] { writer_->prune(); });
            } catch (const WriteError& e) {
                spdlog::warn("{} pruning the inbox and tombstones failed: {}", identity(),
                             e.what());
                if (e.kind() == WriteError::Kind::connection ||
                    e.kind() == WriteError::Kind::outcome_unknown)
                    throw;
            }
        }
        if (pipeline_.is_stream() && std::chrono::steady_clock::now() >= next_coordination_ &&
            coordinate_streams(false))
            throw Reassigned{};
        set_state(WorkerState::consuming);
        fill(batch, backlog);
        if (!batch.empty())
            write_and_settle(batch, backlog);
        if (stop_.requested.load() || paused_)
            return;
    }
}

void Worker::fill(Batch& batch, Backlog& backlog) {
    using Clock = BatchPolicy::Clock;
    // A delivery found waiting when reading resumes (in the backlog, or returned at once) may
    // have arrived at any moment since reading stopped for the previous batch's write: its
    // batch's delay counts from then, so max_delay_ms bounds its wait in rmq2pg, the write
    // included. Once the delay has passed, deliveries already waiting still join the batch,
    // without waiting for more, up to max_messages/max_bytes: a write longer than max_delay_ms
    // leaves full batches behind it, not single messages.
    constexpr auto kAlreadyWaiting = std::chrono::milliseconds(1);
    const auto resumed_at = Clock::now();
    // One clock reading after each delivery serves the next round's checks: at tens of
    // thousands of messages a second, reading it four times per message showed in profiles.
    auto now = resumed_at;
    struct StopReading {
        Clock::time_point& at;
        ~StopReading() { at = Clock::now(); }
    } stop_reading{reading_stopped_at_};
    while (!policy_.full()) {
        const bool due = policy_.due(now);
        note_progress(batch, backlog, now);
        if (stop_.requested.load())
            return;
        std::optional<Delivery> delivery;
        if (!backlog.deliveries.empty()) {
            delivery = std::move(backlog.deliveries.front());
            backlog.deliveries.pop_front();
            backlog.bytes -= delivery->body.size();
        } else if (held_bytes(batch, backlog) >= pipeline_.max_inflight_bytes) {
            return;  // write what is held before reading more (the batch is not empty here)
        } else {
            delivery = source_->next(due ? std::chrono::milliseconds(0)
                                         : policy_.wait_budget(now, kIdlePoll));
            if (!delivery) {
                if (batch.empty() || due)
                    return;  // idle (serve() runs its periodic work), or due
                now = Clock::now();
                continue;
            }
            metrics_.received++;
            if (delivery->redelivered)
                metrics_.redelivered++;
        }
        now = Clock::now();
        const bool already_waiting = now - resumed_at < kAlreadyWaiting;
        policy_.add(delivery->body.size(), now, already_waiting ? reading_stopped_at_ : now);
        batch.add(std::move(*delivery));
    }
}

void Worker::write_and_settle(Batch& batch, Backlog& backlog) {
    // Mapping needs the catalog's column types, which come with a connection (gone after a
    // large batch released its buffers, or after a failure outside a batch).
    connect_writer_retrying(batch, backlog);
    set_state(WorkerState::writing);
    if (pipeline_.schema_evolution == SchemaEvolution::basic)
        evolve_schema(batch, backlog);
    batch.map(pipeline_, mappers_, config_.log_redact_values);
    count_mapping_outcomes(batch);
    if (pipeline_.is_stream()) {
        write_stream_batch(batch, backlog);
    } else {
        write_pending(batch, backlog);
        settle_poison(batch, backlog);
    }
    if (paused_)
        return;
    if (auto tag = batch.last_ackable_tag())
        source_->settle_up_to(*tag);
    metrics_.batches++;
    if (batch.body_bytes() > large_batch_bytes())
        release_large_buffers(batch);
    else
        batch.clear();
    policy_.reset();
    note_progress(batch, backlog);
}

// Writes every pending message, retrying failures until they commit (or the shutdown deadline
// passes). Committed and poison statuses survive a retry, so nothing is written twice.
void Worker::write_pending(Batch& batch, Backlog& backlog) {
    while (true) {
        Batch::Part pending = batch.pending();
        if (pending.empty())
            return;
        try {
            if (!writer_)
                connect_writer();
            set_state(WorkerState::writing);
            if (pipeline_.is_stream())
                write_stream_isolating(batch, std::move(pending), backlog);
            else
                write_isolating(batch, std::move(pending));
            backoff_.reset();
            // A refused truncate gives back the changes it had dropped: they are pending now.
            if (paused_)
                return;
            continue;
        } catch (const WriteError& e) {
            metrics_.write_failures++;
            // Streams: a lost lease, or a COMMIT of unknown outcome, is resolved by reading
            // again from the offset PostgreSQL holds (Worker::run()).
            if (pipeline_.is_stream() && (e.kind() == WriteError::Kind::fenced ||
                                          e.kind() == WriteError::Kind::outcome_unknown))
                throw;
            auto delay = backoff_.next_delay();
            std::string reason = bounded_reason(e.what(), config_.log_redact_values);
            spdlog::error("{} batch of {} (tags {}..{}) not written, retrying in {} ms: {} ({})",
                          identity(), batch.size(), batch.first_tag(), batch.last_tag(),
                          delay.count(), reason, to_string(e.kind()));
            metrics_.last_error.set(identity() + " batch not written: " + reason);
            if (e.kind() == WriteError::Kind::connection ||
                e.kind() == WriteError::Kind::outcome_unknown ||
                e.kind() == WriteError::Kind::schema)
                disconnect_writer();
            wait(delay, &backlog, &batch);
        }
    }
}

void Worker::write_isolating(Batch& batch, Batch::Part part) {
    std::vector<Batch::Part> parts;
    parts.push_back(std::move(part));
    while (!parts.empty()) {
        Batch::Part current = std::move(parts.back());
        parts.pop_back();
        auto rows = batch.rows_of(current);
        try {
            auto started = std::chrono::steady_clock::now();
            guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms), "writing a batch",
                    "postgres.write_timeout_ms", [&] { writer_->write(rows, {}); });
            record_commit(batch, current, started);
            batch.mark_committed(current);
        } catch (const WriteError& e) {
            if (e.kind() != WriteError::Kind::bad_data)
                throw;
            auto next = e.truncate_refused()
                            ? batch.split_truncate(current, e.failed_target())
                            : batch.split(current, e.failed_row(), e.failed_target());
            if (next.empty())
                batch.mark_poison(current.front(),
                                  bounded_reason(e.what(), config_.log_redact_values));
            for (auto& p : next)
                parts.push_back(std::move(p));
        }
    }
}

// Every poison message leaves the queue the way on_error says, before the batch is settled.
void Worker::settle_poison(Batch& batch, Backlog& backlog) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const Batch::Message& m = batch.messages()[i];
        if (m.status != Batch::Status::poison)
            continue;
        spdlog::warn("{} poison message (tag {}, routing key '{}'): {}", identity(),
                     m.delivery.delivery_tag, m.delivery.routing_key, m.reason);
        switch (pipeline_.on_error) {
            case OnError::reject:
                source_->reject(m.delivery.delivery_tag);
                batch.mark_rejected(i);
                metrics_.rejected++;
                break;
            case OnError::stop:
                // Settle what committed, leave the poison message (and what follows) unsettled,
                // and pause: closing the connection returns them to the queue.
                for (const auto& other : batch.messages())
                    if (other.status == Batch::Status::committed)
                        source_->settle_one(other.delivery.delivery_tag);
                spdlog::critical(
                    "{} on_error: stop — pipeline paused on a poison message; fix it "
                    "and restart rmq2pg",
                    identity());
                metrics_.last_error.set(identity() + " paused (on_error: stop): " + m.reason);
                paused_ = true;
                return;
            case OnError::dead_letter:
                if (!dead_letter(m, batch, backlog))
                    batch.mark_rejected(i);
                break;
        }
    }
}

// Publishes one poison message to the dead-letter target, retrying broker failures with
// backoff (the shutdown deadline ends the retries). A message that cannot be published at all
// is rejected without requeue (the queue's own dead-letter exchange takes it, if it has one):
// it must never hold the pipeline up. Returns false when it was rejected.
bool Worker::dead_letter(const Batch::Message& m, const Batch& batch, Backlog& backlog) {
    while (true) {
        try {
            // A broker that holds its confirm (a memory alarm blocks publishers) must not cost
            // the consuming connection its heartbeats meanwhile.
            keep_source_alive_during(
                [&] { endpoints_->dead_letters().publish(m.delivery, m.reason); });
            metrics_.dead_lettered++;
            metrics_.dead_letter_reasons.add(m.reason, std::chrono::system_clock::now());
            return true;
        } catch (const AmqpError& e) {
            if (e.kind() == AmqpError::Kind::unpublishable) {
                spdlog::critical(
                    "{} tag {} cannot be dead-lettered ({}); rejected without requeue instead, "
                    "so it reaches the queue's own dead-letter exchange if it has one: {}",
                    identity(), m.delivery.delivery_tag, e.what(), m.reason);
                metrics_.last_error.set(identity() + " dead-lettering impossible: " + e.what());
                source_->reject(m.delivery.delivery_tag);
                metrics_.rejected++;
                return false;
            }
            auto delay = backoff_.next_delay();
            spdlog::error("{} dead-lettering tag {} failed, retrying in {} ms: {}", identity(),
                          m.delivery.delivery_tag, delay.count(), e.what());
            metrics_.last_error.set(identity() + " dead-lettering: " + e.what());
            wait(delay, &backlog, &batch);
        }
    }
}

}  // namespace rmq2pg
