// A classic or quorum queue consumed over a shared AMQP connection (amqp_hub.h) as a worker's
// Source: the worker's deliveries come from its inbox, its settles go to the hub's thread. The
// worker's promises hold as with QueueSource: nothing is settled before its COMMIT (settles are
// posted after it, in order), and a lost channel or connection fails next() and settle_*() so
// the worker drops its unsettled batch, which the broker redelivers. Owned by one worker thread.
#pragma once

#include <memory>
#include <string>

#include "amqp_hub.h"
#include "config.h"
#include "source.h"

namespace rmq2pg {

class HubSource : public Source {
  public:
    // Consumes `pipeline`'s queue on a channel of `hub` (declaring it when the config says so),
    // with the pipeline's prefetch. Throws AmqpError.
    HubSource(std::shared_ptr<AmqpHub> hub, const PipelineConfig& pipeline,
              const std::string& consumer_tag);
    // Gives back everything unsettled (after the settles posted before) and closes the channel.
    ~HubSource() override;
    HubSource(const HubSource&) = delete;
    HubSource& operator=(const HubSource&) = delete;

    std::optional<Delivery> next(std::chrono::milliseconds timeout) override;
    void settle_up_to(std::uint64_t tag) override { post(AmqpHub::Settle::up_to, tag); }
    void settle_one(std::uint64_t tag) override { post(AmqpHub::Settle::one, tag); }
    void reject(std::uint64_t tag) override { post(AmqpHub::Settle::reject, tag); }
    // The hub's thread sends the connection's heartbeats whatever this worker does, so there is
    // nothing to keep alive here (and interval zero: the write guard never calls it).
    void keep_alive() override {}
    std::chrono::milliseconds keep_alive_interval() const override {
        return std::chrono::milliseconds(0);
    }

  private:
    // Throws the inbox's error when the channel is gone (those deliveries are requeued: the
    // worker must drop them, as after a lost connection), else posts the settle.
    void post(AmqpHub::Settle kind, std::uint64_t tag);

    std::shared_ptr<AmqpHub> hub_;
    AmqpHub::Subscription subscription_;
};

}  // namespace rmq2pg
