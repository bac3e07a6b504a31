// The streams a worker holds as its Source: one AMQP connection, one consumer per stream on its
// channel, each started at the offset rmq2pg_state holds (or where the claim says to begin).
// Deliveries come out with their stream and offset; acks are the streams' credit. Owned by one
// worker thread.
#pragma once

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
    void settle_up_to(std::uint64_t tag) override { session_.ack_up_to(tag); }
    void settle_one(std::uint64_t tag) override { session_.ack_one(tag); }
    // A stream has no dead-lettering of its own: refusing a message only returns its credit.
    void reject(std::uint64_t tag) override { session_.ack_one(tag); }
    void keep_alive() override { session_.send_heartbeat(); }
    std::chrono::milliseconds keep_alive_interval() const override;

  private:
    struct Consumer {
        std::string tag;
        std::string_view stream;  // the pipeline's config holds the name
        std::int64_t skip_below = 0;
    };
    AmqpSession session_;
    std::vector<Consumer> consumers_;
};

// The x-stream-offset a claim starts from: its stored offset, else its replay's start_at, else
// the pipeline's `start:`; a time or an interval becomes a timestamp at `now_epoch_s`.
AmqpSession::StreamOffset stream_offset_of(const StreamClaim& claim, const StreamStart& start,
                                           std::int64_t now_epoch_s);

}  // namespace rmq2pg
