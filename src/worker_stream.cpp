// The worker's steps that only streams take: the membership and lease rounds, opening the source
// of the streams it holds, and a batch written in offset order with each write storing the
// offsets it covers. Design: PostgreSQL holds the truth. Every write stores, in its own
// transaction and fenced by the lease's epoch, the offset past what it settles; poison is
// dead-lettered (confirmed) before any write may pass it; anything else that goes wrong (a lost
// lease, a COMMIT of unknown outcome, a broker failure) drops what the worker holds and reads the
// streams again from the stored offsets. So a stream is written exactly once in every mode.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "dead_letter.h"
#include "worker.h"
#include "worker_internal.h"

namespace rmq2pg {

namespace {

std::string member_name(int index) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    // The start time tells apart two processes that got the same pid (a container restarted).
    auto started = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    return std::string(host) + " pid " + std::to_string(getpid()) + "." + std::to_string(started) +
           " worker " + std::to_string(index);
}

}  // namespace

bool Worker::open_stream_source() {
    if (member_.empty())
        member_ = member_name(index_);
    coordinate_streams(false);
    if (claims_.empty()) {
        // Another member holds every stream this round: heartbeat again at the next one.
        set_state(WorkerState::standby);
        note_progress(Batch(), Backlog());
        auto until = next_coordination_;
        while (!stop_.requested.load() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(worker_detail::kIdlePoll);
        return false;
    }
    source_ = endpoints_->open_stream_source(claims_);
    return true;
}

bool Worker::coordinate_streams(bool leaving) {
    CoordinationRequest request;
    request.member = member_;
    request.streams = pipeline_.streams;
    request.lease_s = pipeline_.lease_s;
    request.held = claims_;
    request.leaving = leaving;
    Coordination result;
    guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms), "renewing stream leases",
            "postgres.write_timeout_ms", [&] { result = writer_->coordinate(request); });
    // A third of the lease: two rounds may fail (a slow database) before the lease runs out.
    next_coordination_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(pipeline_.lease_s * 1000 / 3);
    claims_ = std::move(result.held);
    if (result.changes == 0)
        return false;
    metrics_.lease_changes += result.changes;
    std::string held;
    for (const auto& c : claims_)
        held += (held.empty() ? "" : ", ") + c.stream + " (epoch " + std::to_string(c.epoch) +
                (c.next_offset ? ", from offset " + std::to_string(*c.next_offset) : "") + ")";
    spdlog::info("{} holds {} of {} streams among {} live workers: {}", identity(), claims_.size(),
                 pipeline_.streams.size(), result.members, held.empty() ? "none" : held);
    return true;
}

void Worker::drop_streams(const char* why) {
    if (source_)
        spdlog::info("{} reading the streams again from their stored offsets: {}", identity(), why);
    source_.reset();
    in_flight_ = 0;
    policy_.reset();
    next_coordination_ = std::chrono::steady_clock::now();
}

void Worker::leave_streams() {
    if (!pipeline_.is_stream() || !writer_ || member_.empty())
        return;
    try {
        coordinate_streams(true);
    } catch (const WriteError& e) {
        spdlog::warn("{} releasing its streams failed (they expire within lease_s {}): {}",
                     identity(), pipeline_.lease_s, e.what());
    }
}

void Worker::write_stream_batch(Batch& batch, Backlog& backlog) {
    // What mapping found poison is dead-lettered before any write stores an offset past it
    // (on_error: stop commits nothing of this batch: a restart reads it all again).
    for (std::size_t i = 0; i < batch.size(); ++i)
        if (batch.messages()[i].status == Batch::Status::poison &&
            !set_aside_stream_poison(batch, i, backlog))
            return;
    write_pending(batch, backlog);
    if (paused_)
        return;
    // Poison after the last row written: store the offset past it too, so an idle stream does
    // not re-read (and dead-letter again) after a restart. Best effort: the next batch's write
    // stores it anyway.
    bool set_aside = false;
    for (const auto& m : batch.messages())
        set_aside = set_aside || m.status == Batch::Status::dead_lettered ||
                    m.status == Batch::Status::rejected;
    if (!set_aside)
        return;
    try {
        auto offsets = offsets_to_store(batch, nullptr, claims_);
        guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms),
                "storing stream offsets", "postgres.write_timeout_ms",
                [&] { writer_->write({}, offsets); });
    } catch (const WriteError& e) {
        if (e.kind() == WriteError::Kind::fenced || e.kind() == WriteError::Kind::outcome_unknown)
            throw;
        spdlog::warn("{} storing the offsets past dead-lettered messages failed: {}", identity(),
                     e.what());
        if (e.kind() == WriteError::Kind::connection)
            disconnect_writer();
    }
}

// As write_isolating(), in offset order: a refused part is split into what precedes the blamed
// row, the row, and what follows, tried in that order; a row that fails alone is dead-lettered
// before the next part is written. Each write stores the offsets of what it settles.
void Worker::write_stream_isolating(Batch& batch, Batch::Part part, Backlog& backlog) {
    std::vector<Batch::Part> parts;
    parts.push_back(std::move(part));
    while (!parts.empty()) {
        Batch::Part current = std::move(parts.back());
        parts.pop_back();
        auto rows = batch.rows_of(current);
        auto offsets = offsets_to_store(batch, &current, claims_);
        try {
            auto started = std::chrono::steady_clock::now();
            guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms), "writing a batch",
                    "postgres.write_timeout_ms", [&] { writer_->write(rows, offsets); });
            record_commit(batch, current, started);
            batch.mark_committed(current);
        } catch (const WriteError& e) {
            if (e.kind() != WriteError::Kind::bad_data)
                throw;
            auto next = e.truncate_refused()
                            ? batch.split_truncate(current, e.failed_target())
                            : batch.split(current, e.failed_row(), e.failed_target(), true);
            if (next.empty()) {
                std::size_t i = current.front();
                batch.mark_poison(i, bounded_reason(e.what(), config_.log_redact_values));
                if (!set_aside_stream_poison(batch, i, backlog))
                    return;
            }
            for (auto& p : next)
                parts.push_back(std::move(p));
        }
    }
}

// Poison message `i` leaves the stream's way before any offset passes it: dead-lettered to
// "<stream>.dead" (or rejected when it cannot be published), or, with on_error: stop, the
// pipeline pauses and nothing from it on commits (after a restart it is read again from the
// stored offset). Returns false when paused.
bool Worker::set_aside_stream_poison(Batch& batch, std::size_t i, Backlog& backlog) {
    const Batch::Message& m = batch.messages()[i];
    if (pipeline_.on_error == OnError::stop) {
        spdlog::critical(
            "{} on_error: stop — pipeline paused on a poison message (stream '{}' offset {}): {}; "
            "fix it and restart rmq2pg",
            identity(), m.delivery.stream, m.delivery.stream_offset.value_or(-1), m.reason);
        metrics_.last_error.set(identity() + " paused (on_error: stop): " + m.reason);
        paused_ = true;
        return false;
    }
    spdlog::warn("{} poison message (stream '{}' offset {}): {}", identity(), m.delivery.stream,
                 m.delivery.stream_offset.value_or(-1), m.reason);
    if (dead_letter(m, batch, backlog))
        batch.mark_dead_lettered(i);
    else
        batch.mark_rejected(i);
    return true;
}

}  // namespace rmq2pg
