// Samples every pipeline's counters every 2 s into a 5-minute ring (the rates of /api/status,
// of systemd's STATUS= line and the page's chart), and polls the depth of each pipeline's queue
// and dead-letter queue every 5 s over an AMQP connection of its own: a worker's session is never
// shared across threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "metrics.h"
#include "stream_end.h"
#include "supervisor.h"

namespace rmq2pg {

class StatusSampler {
  public:
    // 2 s samples make the chart smooth enough; 150 of them cover the 5 minutes it shows.
    static constexpr std::chrono::seconds kInterval{2};
    static constexpr std::size_t kRingSize = 150;
    // Rates are averaged over 10 s: long enough to smooth batch-sized steps in the counters.
    static constexpr std::chrono::seconds kRateWindow{10};
    // Queue depth every 5 s: one passive queue.declare per queue, negligible for the broker.
    static constexpr std::chrono::seconds kQueuePollInterval{5};
    // A stream's first offset moves only when retention drops a whole segment: probed once a
    // minute (a connection and a consumer of its own), and 2 s for its first message.
    static constexpr std::chrono::seconds kFirstOffsetProbeInterval{60};
    static constexpr std::chrono::milliseconds kFirstOffsetProbeTimeout{2000};

    struct Sample {
        std::chrono::system_clock::time_point at;
        std::uint64_t received = 0, committed = 0, dead_lettered = 0;
        Histogram::Snapshot commit_seconds;
    };
    struct Rates {
        double received = 0, committed = 0, dead_lettered = 0;  // per second
    };
    struct QueueReading {
        bool known = false;  // false until the first successful poll
        std::uint32_t messages = 0, consumers = 0;
        std::chrono::system_clock::time_point at;  // of the last successful poll
        std::string error;                         // of the last poll, empty when it succeeded
    };
    struct PipelineStatus {
        std::string name;             // the pipeline's; a reload may reorder or replace them
        std::string queue_name;       // the queue polled for `queue`
        std::vector<Sample> samples;  // oldest first, at most kRingSize
        Rates rates;                  // over the last kRateWindow
        QueueReading queue;
        // Streams: what rmq2pg_state holds (polled with the queue depth); empty for a queue.
        bool is_stream = false;
        bool streams_known = false;  // false until the first successful poll
        std::vector<StreamReading> streams;
        std::string streams_error;
        // Streams: what the broker tells of each one's end (polled with the queue depth), in
        // the order of the pipeline's `streams`.
        std::vector<StreamEnd> stream_ends;
        // The pipeline's dead-letter queue ("" when rmq2pg cannot know it: on_error other than
        // dead_letter, or a dead_letter.exchange of the user's that no declared queue is bound
        // to); a queue not declared yet reads as 0 messages.
        std::string dead_letter_queue_name;
        QueueReading dead_letter_queue;
    };

    // `poll_queues`: open the queue-depth connection (only worth it when someone reads it).
    StatusSampler(const Supervisor& supervisor, bool poll_queues);
    ~StatusSampler();
    StatusSampler(const StatusSampler&) = delete;
    StatusSampler& operator=(const StatusSampler&) = delete;

    void start();
    // Stops both threads. The poller may sit in a connect or an RPC (bounded by their timeouts):
    // it gets 2 s, then is left to finish on its own (it owns everything it touches).
    void stop();

    // Copies of the current state, one per pipeline at the last sample. A reload can change
    // the pipelines between this and a call of Supervisor::pipelines(): look them up by name.
    std::vector<PipelineStatus> snapshot() const;
    // The entry of `status` for pipeline `name`; nullptr for a pipeline not sampled yet.
    static const PipelineStatus* find(const std::vector<PipelineStatus>& status,
                                      const std::string& name);
    // One line for systemd's STATUS=: committed rate and total per pipeline, workers consuming.
    std::string summary() const;

    // Rates between the newest sample and the oldest one within `window` of it. Pure.
    static Rates rates_of(const std::vector<Sample>& samples, std::chrono::seconds window);

  private:
    // Everything both threads and the readers touch. `lock` is the one lock: the sampler and
    // poller threads write under it, HTTP handlers and the main thread copy under it.
    struct Shared {
        std::mutex lock;
        std::condition_variable wake;
        bool stopping = false;
        bool poller_done = false;
        std::vector<PipelineStatus> pipelines;
        // The connection settings the poller uses: the supervisor's current config, replaced by
        // the sampler after a reload. The poller shares it, so one left behind keeps it alive.
        std::shared_ptr<const Config> config;
    };
    void sample_loop();
    void take_sample();

    const Supervisor& supervisor_;
    const bool poll_queues_;
    std::shared_ptr<Shared> shared_;
    std::thread sampler_;
    std::thread poller_;
};

}  // namespace rmq2pg
