// The worker loop. Design: a batch is filled from the AMQP session until the batch policy closes
// it, mapped to COPY rows once, and written in one transaction. Poison rows are isolated (the
// row PostgreSQL names in its COPY error, else bisection), the rest commits, poison messages are
// dead-lettered with publisher confirms, and only then is everything acked with one
// multiple=true ack up to the batch's last delivery tag. Transient database failures keep the
// batch and retry with backoff while the AMQP session stays alive (deliveries that arrive
// meanwhile wait in a backlog bounded by prefetch). A broker failure drops everything unacked:
// the broker redelivers it, so nothing is lost and nothing uncommitted is ever acked.
#include "worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "topic_match.h"

namespace rmq2pg {

const char* to_string(WorkerState state) {
    switch (state) {
        case WorkerState::starting:
            return "starting";
        case WorkerState::connecting:
            return "connecting";
        case WorkerState::consuming:
            return "consuming";
        case WorkerState::writing:
            return "writing";
        case WorkerState::backing_off:
            return "backing_off";
        case WorkerState::paused:
            return "paused";
        case WorkerState::stopped:
            return "stopped";
    }
    return "?";
}

namespace {

// How long one wait for a delivery may block while the batch is empty: bounds how late a worker
// notices a stop request.
constexpr std::chrono::milliseconds kIdlePoll{200};

// Thrown inside the worker when the shutdown deadline passed with work still unacked.
struct ShutdownDeadline {};

std::string now_rfc3339() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms.count()));
    return buf;
}

std::string hostname() {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    return buf;
}

}  // namespace

Worker::Worker(const Config& config, const PipelineConfig& pipeline, int index,
               const StopSignal& stop, PipelineMetrics& metrics)
    : config_(config),
      pipeline_(pipeline),
      index_(index),
      stop_(stop),
      metrics_(metrics),
      url_index_(static_cast<std::size_t>(index) % config.amqp_urls.size()),
      backoff_(std::chrono::milliseconds(config.retry.initial_ms),
               std::chrono::milliseconds(config.retry.max_ms),
               static_cast<std::uint64_t>(getpid()) * 1000 + static_cast<std::uint64_t>(index)),
      policy_(pipeline.batch) {}

Worker::~Worker() = default;

std::string Worker::identity() const {
    return "[" + pipeline_.name + "/" + std::to_string(index_) + "]";
}

void Worker::set_state(WorkerState state) {
    WorkerState old = state_.exchange(state);
    if (old != state && (state != WorkerState::writing && old != WorkerState::writing))
        spdlog::debug("{} state {} -> {}", identity(), to_string(old), to_string(state));
}

// Published for the HTTP server's in-flight gauge and the wedged-worker health check.
void Worker::note_progress() {
    in_flight_.store(batch_.size() + backlog_.size());
    last_progress_.store(std::chrono::steady_clock::now().time_since_epoch().count());
}

// Observes one committed write: its size and duration, and each message's end-to-end latency
// from its AMQP timestamp (seconds since the epoch, set by the publisher) when it has one.
void Worker::record_commit(const std::vector<std::size_t>& part,
                           std::chrono::steady_clock::time_point started) {
    metrics_.commit_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    metrics_.batch_size.observe(static_cast<double>(part.size()));
    auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    for (std::size_t i : part)
        if (auto ts = batch_[i].delivery.timestamp)
            metrics_.latency_seconds.observe(
                static_cast<double>(std::max<std::int64_t>(0, now_s - *ts)));
    note_progress();
}

void Worker::run() {
    spdlog::info(
        "{} started: queue '{}' -> table {} ({} mode, prefetch {}, batch {} msgs / {} "
        "bytes / {} ms)",
        identity(), pipeline_.queue, pipeline_.qualified_table(), to_string(pipeline_.mode),
        pipeline_.prefetch, pipeline_.batch.max_messages, pipeline_.batch.max_bytes,
        pipeline_.batch.max_delay_ms);
    while (!stop_.requested.load() && !paused_) {
        try {
            if (!writer_)
                connect_writer();
            if (!session_)
                connect_session();
            backoff_.reset();
            serve();
        } catch (const AmqpError& e) {
            if (e.kind() == AmqpError::Kind::conflict) {
                // Reconnecting would meet the same conflict forever: pause and say what differs.
                spdlog::critical(
                    "{} {}: the declaration in the config conflicts with what "
                    "exists; pipeline paused until the config or the broker is "
                    "fixed and rmq2pg restarted",
                    identity(), e.what());
                metrics_.last_error.set(identity() + " paused (declaration conflict): " + e.what());
                paused_ = true;
                batch_.clear();
                backlog_.clear();
                note_progress();
                continue;
            }
            if (batch_.empty() && backlog_.empty())
                spdlog::error("{} broker: {}", identity(), e.what());
            else
                spdlog::error("{} broker: {}; {} unacked messages return to the queue", identity(),
                              e.what(), batch_.size() + backlog_.size());
            metrics_.last_error.set(identity() + " broker: " + e.what());
            session_.reset();
            publisher_.reset();
            batch_.clear();
            backlog_.clear();
            policy_.reset();
            note_progress();
            url_index_ = (url_index_ + 1) % config_.amqp_urls.size();
            wait(backoff_.next_delay());
        } catch (const WriteError& e) {
            spdlog::error("{} database ({}): {}", identity(), to_string(e.kind()), e.what());
            metrics_.last_error.set(identity() + " database: " + e.what());
            writer_.reset();
            wait(backoff_.next_delay());
        } catch (const ShutdownDeadline&) {
            spdlog::error(
                "{} shutdown timeout: {} messages not committed; they return to the "
                "queue",
                identity(), batch_.size() + backlog_.size());
            stop_.abandoned = true;
            break;
        }
    }
    if (paused_) {
        session_.reset();  // returns the poison message to its queue
        set_state(WorkerState::paused);
        while (!stop_.requested.load())
            std::this_thread::sleep_for(kIdlePoll);
    }
    session_.reset();  // closes the connection: anything unacked returns to the queue
    publisher_.reset();
    writer_.reset();
    set_state(WorkerState::stopped);
    spdlog::info("{} stopped", identity());
}

void Worker::connect_writer() {
    set_state(WorkerState::connecting);
    std::string application_name = "rmq2pg/" + pipeline_.name + "/" + std::to_string(index_);
    writer_ =
        std::make_unique<PgWriter>(PgConnectionSettings::of(config_, application_name), pipeline_);
    writer_->connect();
    mappers_.clear();
    auto targets = pipeline_.targets();
    for (std::size_t t = 0; t < targets.size(); ++t)
        mappers_.emplace_back(*targets[t], writer_->table(t), pipeline_.dedupe);
    metrics_.pg_connects++;
    spdlog::info("{} connected to PostgreSQL ({})", identity(),
                 mask_url_password(config_.postgres_url));
}

void Worker::connect_session() {
    set_state(WorkerState::connecting);
    const AmqpUrl& url = config_.amqp_urls[url_index_];
    std::string name = "rmq2pg " + pipeline_.name + "/" + std::to_string(index_) + " on " +
                       hostname() + " pid " + std::to_string(getpid());
    session_ = std::make_unique<AmqpSession>(url, config_.heartbeat_s, name);
    for (const auto& exchange : config_.exchanges)
        session_->declare_exchange(exchange);
    if (pipeline_.declare)
        session_->declare_queue(pipeline_.queue, *pipeline_.declare);
    session_->start_consuming(pipeline_.queue, static_cast<std::uint16_t>(pipeline_.prefetch),
                              "rmq2pg-" + pipeline_.name + "-" + std::to_string(index_) + "-" +
                                  hostname() + "-" + std::to_string(getpid()));
    metrics_.amqp_connects++;
    spdlog::info("{} consuming from queue '{}' on {}", identity(), pipeline_.queue, url.masked());
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
    while (true) {
        if (prunes && std::chrono::steady_clock::now() >= next_prune) {
            next_prune = std::chrono::steady_clock::now() + prune_every;
            try {
                writer_->prune();
            } catch (const WriteError& e) {
                spdlog::warn("{} pruning the inbox and tombstones failed: {}", identity(),
                             e.what());
                if (e.kind() == WriteError::Kind::connection)
                    throw;
            }
        }
        set_state(WorkerState::consuming);
        fill_batch();
        if (!batch_.empty())
            flush_batch();
        if (stop_.requested.load() || paused_)
            return;
    }
}

void Worker::fill_batch() {
    while (!policy_.should_close(BatchPolicy::Clock::now())) {
        note_progress();
        if (stop_.requested.load())
            return;
        std::optional<Delivery> delivery;
        if (!backlog_.empty()) {
            delivery = std::move(backlog_.front());
            backlog_.pop_front();
        } else {
            delivery =
                session_->next_delivery(policy_.wait_budget(BatchPolicy::Clock::now(), kIdlePoll));
            if (!delivery) {
                if (batch_.empty())
                    return;  // idle: let serve() run its periodic work
                continue;
            }
            metrics_.received++;
            if (delivery->redelivered)
                metrics_.redelivered++;
        }
        policy_.add(delivery->body.size(), BatchPolicy::Clock::now());
        batch_.emplace_back();
        batch_.back().delivery = std::move(*delivery);
    }
}

void Worker::flush_batch() {
    set_state(WorkerState::writing);
    auto targets = pipeline_.targets();
    rows_.resize(targets.size());
    for (auto& rows : rows_)
        rows.clear();
    // Rows are counted, not inferred from an empty buffer: a row can be empty (one text column
    // holding ""), and it still needs its separator.
    std::vector<std::size_t> row_count(targets.size(), 0);
    for (auto& m : batch_) {
        if (pipeline_.max_redeliveries > 0) {
            // Quorum queues count deliveries themselves.
            if (auto count = m.delivery.header("x-delivery-count")) {
                if (std::atoll(count->text.c_str()) > pipeline_.max_redeliveries) {
                    m.status = Status::poison;
                    m.reason = "delivered " + count->text + " times (max_redeliveries " +
                               std::to_string(pipeline_.max_redeliveries) + ")";
                    continue;
                }
            }
        }
        // Routes are tried in order, first match wins; a pipeline without routes has one
        // target that takes everything.
        m.target = targets.size();
        for (std::size_t t = 0; t < targets.size() && m.target == targets.size(); ++t)
            if (pipeline_.routes.empty() ||
                topic_matches(targets[t]->match, m.delivery.routing_key))
                m.target = t;
        if (m.target == targets.size()) {
            m.status = Status::poison;
            m.reason = "no route matches routing key '" + std::string(m.delivery.routing_key) + "'";
            continue;
        }
        std::string& rows = rows_[m.target];
        if (row_count[m.target] > 0)
            rows += '\n';
        std::size_t offset = rows.size();
        if (auto error = mappers_[m.target].append_row(m.delivery, rows)) {
            if (row_count[m.target] > 0)
                rows.pop_back();
            m.status = Status::poison;
            m.reason = *error;
            continue;
        }
        m.row_offset = offset;
        m.row_length = rows.size() - offset;
        m.mapped = true;
        ++row_count[m.target];
    }
    write_pending();
    settle_poison();
    if (paused_)
        return;
    session_->ack_up_to(batch_.back().delivery.delivery_tag);
    metrics_.batches++;
    batch_.clear();
    policy_.reset();
    note_progress();
}

std::size_t Worker::mapped_count() const {
    std::size_t n = 0;
    for (const auto& m : batch_)
        n += m.mapped ? 1 : 0;
    return n;
}

// Writes every pending message, retrying transient failures until they commit (or the shutdown
// deadline passes). Committed and poison statuses survive a retry, so nothing is written twice.
void Worker::write_pending() {
    while (true) {
        std::vector<std::size_t> pending;
        for (std::size_t i = 0; i < batch_.size(); ++i)
            if (batch_[i].status == Status::pending)
                pending.push_back(i);
        if (pending.empty())
            return;
        try {
            if (!writer_)
                connect_writer();
            set_state(WorkerState::writing);
            write_isolating(std::move(pending));
            backoff_.reset();
            return;
        } catch (const WriteError& e) {
            metrics_.write_failures++;
            auto delay = backoff_.next_delay();
            spdlog::error("{} batch of {} (tags {}..{}) not written, retrying in {} ms: {} ({})",
                          identity(), batch_.size(), batch_.front().delivery.delivery_tag,
                          batch_.back().delivery.delivery_tag, delay.count(), e.what(),
                          to_string(e.kind()));
            metrics_.last_error.set(identity() + " batch not written: " + e.what());
            if (e.kind() == WriteError::Kind::connection ||
                e.kind() == WriteError::Kind::outcome_unknown ||
                e.kind() == WriteError::Kind::schema)
                writer_.reset();
            wait(delay);
        }
    }
}

void Worker::write_isolating(std::vector<std::size_t> indices) {
    std::vector<std::vector<std::size_t>> parts;
    parts.push_back(std::move(indices));
    while (!parts.empty()) {
        std::vector<std::size_t> part = std::move(parts.back());
        parts.pop_back();
        // The first attempt sends the rows as mapped; retries send only what is left.
        bool everything = part.size() == mapped_count();
        subsets_.resize(rows_.size());
        std::vector<TargetRows> write_parts(rows_.size());
        for (std::size_t t = 0; t < rows_.size(); ++t)
            write_parts[t].target = t;
        if (!everything) {
            for (auto& subset : subsets_)
                subset.clear();
        }
        for (std::size_t i : part) {
            TargetRows& write_part = write_parts[batch_[i].target];
            if (!everything) {
                std::string& subset = subsets_[batch_[i].target];
                if (write_part.count > 0)
                    subset += '\n';
                subset.append(rows_[batch_[i].target], batch_[i].row_offset, batch_[i].row_length);
            }
            write_part.count++;
        }
        for (std::size_t t = 0; t < rows_.size(); ++t)
            write_parts[t].rows = everything ? &rows_[t] : &subsets_[t];
        try {
            auto started = std::chrono::steady_clock::now();
            writer_->write(write_parts);
            record_commit(part, started);
            for (std::size_t i : part)
                batch_[i].status = Status::committed;
            metrics_.committed += part.size();
        } catch (const WriteError& e) {
            if (e.kind() != WriteError::Kind::bad_data)
                throw;
            // The blamed row counts within its target's rows, which follow `part`'s order.
            std::optional<std::size_t> blamed;
            if (e.failed_row()) {
                std::size_t seen = 0;
                for (std::size_t j = 0; j < part.size() && !blamed; ++j)
                    if (batch_[part[j]].target == e.failed_target() && seen++ == *e.failed_row())
                        blamed = j;
            }
            if (blamed && part.size() > 1) {
                // Write the rest without the blamed row, then the blamed row alone: only a row
                // that fails by itself is poison, so a misread blame costs one transaction,
                // never a good message.
                std::size_t culprit = part[*blamed];
                parts.push_back({culprit});
                part.erase(part.begin() + static_cast<std::ptrdiff_t>(*blamed));
                if (!part.empty())
                    parts.push_back(std::move(part));
            } else if (part.size() == 1) {
                batch_[part[0]].status = Status::poison;
                batch_[part[0]].reason = e.what();
            } else {
                auto middle = part.begin() + static_cast<std::ptrdiff_t>(part.size() / 2);
                parts.emplace_back(middle, part.end());
                parts.emplace_back(part.begin(), middle);
            }
        }
    }
}

// Every poison message leaves the queue the way on_error says, before the batch is acked.
void Worker::settle_poison() {
    for (auto& m : batch_) {
        if (m.status != Status::poison)
            continue;
        spdlog::warn("{} poison message (tag {}, routing key '{}'): {}", identity(),
                     m.delivery.delivery_tag, m.delivery.routing_key, m.reason);
        switch (pipeline_.on_error) {
            case OnError::reject:
                session_->reject(m.delivery.delivery_tag, false);
                metrics_.rejected++;
                break;
            case OnError::stop: {
                // Ack what committed, leave the poison message (and what follows) unacked, and
                // pause: closing the connection returns them to the queue.
                for (auto& other : batch_)
                    if (other.status == Status::committed)
                        session_->ack_one(other.delivery.delivery_tag);
                spdlog::critical(
                    "{} on_error: stop — pipeline paused on a poison message; fix it "
                    "and restart rmq2pg",
                    identity());
                metrics_.last_error.set(identity() + " paused (on_error: stop): " + m.reason);
                paused_ = true;
                batch_.clear();
                backlog_.clear();
                return;
            }
            case OnError::dead_letter: {
                std::vector<std::pair<std::string, std::string>> headers = {
                    {"x-rmq2pg-error", m.reason},
                    {"x-rmq2pg-pipeline", pipeline_.name},
                    {"x-rmq2pg-table", pipeline_.qualified_table()},
                    {"x-original-exchange", std::string(m.delivery.exchange)},
                    {"x-original-routing-key", std::string(m.delivery.routing_key)},
                    {"x-rmq2pg-failed-at", now_rfc3339()},
                };
                while (true) {
                    try {
                        if (!publisher_) {
                            publisher_ = std::make_unique<AmqpSession>(
                                config_.amqp_urls[url_index_], config_.heartbeat_s,
                                "rmq2pg " + pipeline_.name + "/" + std::to_string(index_) +
                                    " dead-letter publisher");
                            // Declared here, not when consuming starts: a classic "<queue>.dead"
                            // whose home node is down must not stop a worker from failing over
                            // to another node and consuming (only dead-lettering waits for it).
                            if (pipeline_.declares_dead_letter_queue())
                                publisher_->ensure_queue(pipeline_.dead_letter_routing_key());
                        }
                        publisher_->publish_confirmed(pipeline_.dead_letter.exchange,
                                                      pipeline_.dead_letter_routing_key(),
                                                      m.delivery, headers);
                        break;
                    } catch (const AmqpError& e) {
                        publisher_.reset();
                        auto delay = backoff_.next_delay();
                        spdlog::error("{} dead-lettering tag {} failed, retrying in {} ms: {}",
                                      identity(), m.delivery.delivery_tag, delay.count(), e.what());
                        metrics_.last_error.set(identity() + " dead-lettering: " + e.what());
                        wait(delay);
                    }
                }
                metrics_.dead_lettered++;
                break;
            }
        }
    }
}

// Sleeps `delay` while keeping the AMQP session alive: heartbeats go out and deliveries that
// arrive are kept in the backlog (the broker sends no more than prefetch unacked ones).
void Worker::wait(std::chrono::milliseconds delay) {
    set_state(WorkerState::backing_off);
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
        note_progress();
        bool holding = !batch_.empty() || !backlog_.empty();
        if (stop_.requested.load() && !holding)
            return;
        if (stop_.past_deadline() && holding)
            throw ShutdownDeadline{};
        auto slice = std::min(kIdlePoll, std::chrono::ceil<std::chrono::milliseconds>(
                                             until - std::chrono::steady_clock::now()));
        if (session_) {
            if (auto delivery = session_->next_delivery(slice)) {
                metrics_.received++;
                backlog_.push_back(std::move(*delivery));
            }
        } else {
            std::this_thread::sleep_for(slice);
        }
    }
}

}  // namespace rmq2pg
