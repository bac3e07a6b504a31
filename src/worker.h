// One worker thread of a pipeline: fill a batch from its source → map it to rows → write it in
// one transaction (setting poison aside) → dead-letter the poison → settle.
// Ownership: a Worker owns its endpoints (source, writer, dead-letter sink) and its write guard;
// nothing of it is touched by another thread except the readings below (atomics) and the
// shared PipelineMetrics. The guard's thread calls the source's keep_alive() and the writer's
// interrupt() only while the worker is blocked in a guarded call (write_guard.h).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aggregate_mapper.h"
#include "backoff.h"
#include "batch.h"
#include "batch_policy.h"
#include "config.h"
#include "endpoints.h"
#include "metrics.h"
#include "write_guard.h"

namespace rmq2pg {

// Set once by the supervisor; read by every worker.
struct StopSignal {
    std::atomic<bool> requested{false};
    // steady_clock ticks: after this, a worker abandons what it cannot commit (no ack; the broker
    // requeues it when the connection closes).
    std::atomic<std::chrono::steady_clock::rep> deadline{0};
    // Set by a worker that gave up on uncommitted messages at the deadline (exit status 1).
    mutable std::atomic<bool> abandoned{false};

    bool past_deadline() const {
        return requested.load() &&
               std::chrono::steady_clock::now().time_since_epoch().count() >= deadline.load();
    }
};

class Worker {
  public:
    // `endpoints`: what the worker connects to; nullptr = the broker and database of `config`.
    Worker(const Config& config, const PipelineConfig& pipeline, int index, const StopSignal& stop,
           PipelineMetrics& metrics, std::unique_ptr<Endpoints> endpoints = nullptr);
    ~Worker();

    // The thread body: returns once stop was requested and the open batch is committed and
    // settled (or abandoned at the shutdown deadline).
    void run();

    // Readings for the HTTP server and the health checks (other threads).
    WorkerState state() const { return state_.load(); }
    // Unsettled messages this worker holds (batch and backlog).
    std::size_t in_flight() const { return in_flight_.load(); }
    // When its loop last turned (a poll returned, a write finished, a wait slept).
    std::chrono::steady_clock::time_point last_progress() const {
        return std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(last_progress_.load()));
    }
    // Since when the PostgreSQL call under way (connect or batch write) runs, if one does.
    std::optional<std::chrono::steady_clock::time_point> writing_since() const {
        auto since = writing_since_.load();
        if (since == 0)
            return std::nullopt;
        return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(since));
    }
    // Whether the worker holds a working PostgreSQL connection.
    bool database_connected() const { return database_connected_.load(); }

  private:
    // Deliveries received while a batch was being retried, in order; bounded by prefetch and
    // by max_inflight_bytes.
    struct Backlog {
        std::deque<Delivery> deliveries;
        std::size_t bytes = 0;
    };
    // Body bytes the worker holds: what max_inflight_bytes bounds.
    static std::size_t held_bytes(const Batch& batch, const Backlog& backlog) {
        return batch.body_bytes() + backlog.bytes;
    }

    void serve();
    void fill(Batch& batch, Backlog& backlog);
    void write_and_settle(Batch& batch, Backlog& backlog);
    void write_pending(Batch& batch, Backlog& backlog);
    void write_isolating(Batch& batch, Batch::Part part);
    void settle_poison(Batch& batch, Backlog& backlog);
    bool dead_letter(const Batch::Message& message, const Batch& batch, Backlog& backlog);

    // Streams (worker_stream.cpp): leases, the source of the streams held, batches written in
    // offset order with their offsets.
    bool open_stream_source();
    bool coordinate_streams(bool leaving);
    void write_stream_batch(Batch& batch, Backlog& backlog);
    void write_stream_isolating(Batch& batch, Batch::Part part, Backlog& backlog);
    bool set_aside_stream_poison(Batch& batch, std::size_t i, Backlog& backlog);
    void drop_streams(const char* why);
    void leave_streams();

    // schema_evolution: basic (worker_evolution.cpp): the table made to hold the batch's
    // changes before they are mapped.
    void evolve_schema(Batch& batch, Backlog& backlog);
    void evolve_schema_once(Batch& batch);

    void connect_writer();
    void connect_writer_retrying(const Batch& batch, Backlog& backlog);
    void disconnect_writer();
    // Runs `call` (a blocking PostgreSQL call) under the write guard: the source is kept alive,
    // and past `timeout` (the config key `limit`) the writer is interrupted.
    void guarded(std::chrono::milliseconds timeout, const char* what, const char* limit,
                 const std::function<void()>& call);
    // Runs `call` (a blocking call on another connection) with the source kept alive meanwhile.
    void keep_source_alive_during(const std::function<void()>& call);
    // Sleeps `delay`, keeping the source alive; with a backlog, deliveries that arrive are kept
    // in it (unless max_inflight_bytes is held). Throws ShutdownDeadline when the shutdown
    // deadline passes while messages are held.
    void wait(std::chrono::milliseconds delay, Backlog* backlog, const Batch* batch = nullptr);

    void set_state(WorkerState state);
    void note_progress(
        const Batch& batch, const Backlog& backlog,
        std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
    // After mapping: change events settled without a row, and body fields no column took
    // (columns by name; the first such name of the pipeline is logged once).
    void count_mapping_outcomes(const Batch& batch);
    void record_commit(const Batch& batch, const Batch::Part& part,
                       std::chrono::steady_clock::time_point started);
    std::size_t large_batch_bytes() const;
    void release_large_buffers(Batch& batch);
    std::string identity() const;

    const Config& config_;
    const PipelineConfig& pipeline_;
    const int index_;
    const StopSignal& stop_;
    PipelineMetrics& metrics_;
    std::atomic<WorkerState> state_{WorkerState::starting};
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::chrono::steady_clock::rep> last_progress_{
        std::chrono::steady_clock::now().time_since_epoch().count()};
    std::atomic<std::chrono::steady_clock::rep> writing_since_{0};
    std::atomic<bool> database_connected_{false};

    std::unique_ptr<Endpoints> endpoints_;
    std::unique_ptr<Source> source_;
    std::unique_ptr<BatchWriter> writer_;
    std::vector<AggregateMapper> mappers_;  // one per route, from the writer's catalog reading
    // Declared after the connections it lends, so it stops before they close.
    WriteGuard guard_;
    Backoff backoff_;
    BatchPolicy policy_;
    // When fill() last stopped reading (to write, or idle): a delivery found already waiting
    // when it resumes may have arrived at any moment since.
    BatchPolicy::Clock::time_point reading_stopped_at_ = BatchPolicy::Clock::now();
    bool paused_ = false;
    // Streams: what this worker holds, its name among all instances' workers, when its next
    // membership round is due.
    std::vector<StreamClaim> claims_;
    std::string member_;
    std::chrono::steady_clock::time_point next_coordination_{};
};

}  // namespace rmq2pg
