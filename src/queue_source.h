// A classic or quorum queue as a worker's Source: one AMQP connection (amqp_session.h) that
// declares the configured topology, consumes with manual acks and settles with basic.ack
// (multiple) and basic.nack. Owned by one worker thread.
#pragma once

#include <memory>
#include <string>

#include "amqp_session.h"
#include "config.h"
#include "source.h"

namespace rmq2pg {

class QueueSource : public Source {
  public:
    // Connects to `url`, declares the exchanges and the queue the config asks for, and starts
    // consuming with the pipeline's prefetch. Throws AmqpError.
    QueueSource(const Config& config, const PipelineConfig& pipeline, const AmqpUrl& url,
                const std::string& connection_name, const std::string& consumer_tag);

    std::optional<Delivery> next(std::chrono::milliseconds timeout) override;
    void settle_up_to(std::uint64_t tag) override { session_.ack_up_to(tag); }
    void settle_one(std::uint64_t tag) override { session_.ack_one(tag); }
    void reject(std::uint64_t tag) override { session_.reject(tag, false); }
    void keep_alive() override { session_.send_heartbeat(); }
    std::chrono::milliseconds keep_alive_interval() const override;

  private:
    AmqpSession session_;
};

}  // namespace rmq2pg
