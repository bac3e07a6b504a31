// One worker thread of a pipeline: consume → batch → write (one transaction) → ack.
// Ownership: a Worker owns its AmqpSession, its optional dead-letter publisher and its PgWriter;
// nothing of it is touched by another thread except `state()` and the shared PipelineMetrics.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "amqp_session.h"
#include "backoff.h"
#include "batch_policy.h"
#include "config.h"
#include "dead_letter.h"
#include "metrics.h"
#include "pg_writer.h"
#include "row_mapper.h"
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
    Worker(const Config& config, const PipelineConfig& pipeline, int index, const StopSignal& stop,
           PipelineMetrics& metrics);
    ~Worker();

    // The thread body: returns once stop was requested and the open batch is committed and
    // acked (or abandoned at the shutdown deadline).
    void run();
    WorkerState state() const { return state_.load(); }
    // For the HTTP server and the health check: unacked messages this worker holds (batch and
    // backlog), and when its loop last turned (a poll returned, a write finished, a wait slept).
    std::size_t in_flight() const { return in_flight_.load(); }
    std::chrono::steady_clock::time_point last_progress() const {
        return std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(last_progress_.load()));
    }
    // Since when the write under way started (connect or batch), or nullopt when none is.
    std::optional<std::chrono::steady_clock::time_point> writing_since() const {
        auto since = writing_since_.load();
        if (since == 0)
            return std::nullopt;
        return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(since));
    }
    // Whether the worker holds a working PostgreSQL connection.
    bool database_connected() const { return database_connected_.load(); }

  private:
    enum class Status { pending, committed, poison };
    struct Message {
        Delivery delivery;
        Status status = Status::pending;
        std::string reason;
        std::size_t target = 0;  // index into pipeline targets(): its table and mapper
        std::size_t row_offset = 0, row_length = 0;
        bool mapped = false;  // has a row in rows_[target]
    };

    void set_state(WorkerState state);
    void connect_writer();
    void connect_session();
    void serve();
    void fill_batch();
    void flush_batch();
    void write_pending();
    void write_isolating(std::vector<std::size_t> indices);
    std::size_t mapped_count() const;
    void settle_poison();
    void dead_letter(Message& m);
    std::size_t large_batch_bytes() const;
    void wait(std::chrono::milliseconds delay);
    // Runs `call` (a blocking PostgreSQL call on this thread) under the write guard: heartbeats
    // keep going to the broker, and past `timeout` (the config key `limit`) the writer is
    // interrupted.
    template <typename F>
    void guarded(std::chrono::milliseconds timeout, const char* what, const char* limit, F&& call);
    std::size_t held_bytes() const;
    void release_large_buffers();
    std::string identity() const;
    void note_progress();
    void record_commit(const std::vector<std::size_t>& part,
                       std::chrono::steady_clock::time_point started);

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

    std::size_t url_index_ = 0;  // next amqp.urls entry to try
    std::unique_ptr<AmqpSession> session_;
    DeadLetterPublisher dead_letters_;
    std::unique_ptr<PgWriter> writer_;
    // Declared after the connections it lends, so it stops before they close.
    WriteGuard guard_;
    std::vector<RowMapper> mappers_;  // one per target
    Backoff backoff_;
    BatchPolicy policy_;

    std::vector<Message> batch_;
    std::deque<Delivery> backlog_;      // received while a batch was retried; bounded by prefetch
    std::size_t backlog_bytes_ = 0;     // bodies in backlog_ (batch bodies: policy_)
    std::vector<std::string> rows_;     // per target: COPY text of the batch's mapped messages
    std::vector<std::string> subsets_;  // per target: the rows a retry still has to write
    bool paused_ = false;
};

}  // namespace rmq2pg
