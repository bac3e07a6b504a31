// The streams a worker holds as its Source: one AMQP connection, one consumer per stream on its
// channel, each started at the offset rmq2pg_state holds (or where the claim says to begin).
// Deliveries come out with their stream and offset; acks are the streams' credit. Owned by one
// worker thread, lent to its write guard's thread during a guarded call (read_ahead()).
//
// Read-ahead (design): a worker spends most of a stream's run blocked in its batch's COPY and
// COMMIT, and a stream only delivers as far as the consumer's credit lets it. While the worker is
// blocked, its guard's thread reads the next deliveries into `ahead_` (at most one batch:
// max_messages and max_bytes), so reading the next batch overlaps writing this one. Only the
// guard's thread touches the connection and `ahead_` during the guarded call, only the worker's
// thread outside it, and the guard's watch ends (waiting for a read under way) before the worker
// goes on: the connection is never used by two threads at once (rabbitmq-c is not thread-safe).
// Acks on a stream are credit only (the broker keeps no position for an AMQP 0-9-1 consumer:
// rmq2pg_state does), so what is read ahead is acked at once, as an ack-only consumer would: the
// broker streams on while the batch is written instead of stopping at `prefetch` unacked. What
// rmq2pg holds stays bounded by the batch, the backlog (max_inflight_bytes) and this buffer, and
// what the broker has sent and rmq2pg not yet read by `prefetch`. Every ack is a multiple ack up
// to a tag read and above the last one acked (an ack of a tag already acked would close the
// channel), whatever the worker settles: settling is credit too.
// Exactly-once is untouched: the offsets stored are those of the rows a batch commits, and
// dropping the source (a lost lease, a failure) drops the buffer with it, to be read again from
// the stored offsets.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "amqp_session.h"
#include "config.h"
#include "source.h"
#include "stream_offsets.h"

namespace rmq2pg {

class StreamSource : public Source {
  public:
    // Connects to `url`, declares the streams when the pipeline says so, and starts one consumer
    // per claim. Throws AmqpError (a stream that does not exist: channel).
    StreamSource(const Config& config, const PipelineConfig& pipeline, const AmqpUrl& url,
                 const std::string& connection_name, const std::string& consumer_tag,
                 const std::vector<StreamClaim>& claims);

    // The next delivery of any held stream, with `stream` and `stream_offset` set. Messages
    // before a consumer's start offset (a stream starts at a chunk's beginning) are acked and
    // skipped here.
    std::optional<Delivery> next(std::chrono::milliseconds timeout) override;
    bool reads_ahead() const override { return true; }
    void read_ahead(std::chrono::milliseconds budget) override;
    void settle_up_to(std::uint64_t tag) override { credit_up_to(tag); }
    void settle_one(std::uint64_t tag) override { credit_up_to(tag); }
    // A stream has no dead-lettering of its own: refusing a message only returns its credit.
    void reject(std::uint64_t tag) override { credit_up_to(tag); }
    void keep_alive() override { session_.send_heartbeat(); }
    std::chrono::milliseconds keep_alive_interval() const override;

  private:
    struct Consumer {
        std::string tag;
        std::string_view stream;  // the pipeline's config holds the name
        std::int64_t skip_below = 0;
    };
    // One delivery from the connection (skipping what precedes a consumer's start offset).
    std::optional<Delivery> read(std::chrono::milliseconds timeout);
    // Acks (multiple) up to `tag` unless it is acked already.
    void credit_up_to(std::uint64_t tag);

    AmqpSession session_;
    std::vector<Consumer> consumers_;
    // Read ahead, in arrival order, and their body bytes; bounded by one batch.
    std::deque<Delivery> ahead_;
    std::size_t ahead_bytes_ = 0;
    const std::size_t ahead_max_messages_;
    const std::size_t ahead_max_bytes_;
    // A broker failure met while reading ahead, thrown by the next call to next().
    std::optional<AmqpError> failure_;
    std::uint64_t acked_tag_ = 0;  // every tag up to it is acked, none above it
    std::chrono::steady_clock::time_point next_keep_alive_{};
};

// The x-stream-offset a claim starts from: its stored offset, else its replay's start_at, else
// the pipeline's `start:`; a time or an interval becomes a timestamp at `now_epoch_s`.
AmqpSession::StreamOffset stream_offset_of(const StreamClaim& claim, const StreamStart& start,
                                           std::int64_t now_epoch_s);

}  // namespace rmq2pg
