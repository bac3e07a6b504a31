// A queue consumed over a shared AMQP connection as a worker's Source; see hub_source.h.
#include "hub_source.h"

namespace rmq2pg {
namespace {

// Subscribing waits for the hub's connection (connect 10 s, login and each declaration up to
// 30 s: amqp_internal.h's timeouts) like a connection of the worker's own would.
constexpr std::chrono::milliseconds kSubscribeTimeout{90000};
// Closing waits for the hub to give the unsettled deliveries back; past it the hub still does,
// or its connection closes: the broker requeues them either way.
constexpr std::chrono::milliseconds kUnsubscribeTimeout{5000};

}  // namespace

HubSource::HubSource(std::shared_ptr<AmqpHub> hub, const PipelineConfig& pipeline,
                     const std::string& consumer_tag)
    : hub_(std::move(hub)) {
    AmqpHub::ConsumerSpec spec;
    spec.queue = pipeline.queue;
    spec.declare = pipeline.declare;
    spec.prefetch = static_cast<std::uint16_t>(pipeline.prefetch);
    spec.consumer_tag = consumer_tag;
    subscription_ = hub_->subscribe(spec, kSubscribeTimeout);
}

HubSource::~HubSource() {
    hub_->unsubscribe(subscription_, kUnsubscribeTimeout);
}

std::optional<Delivery> HubSource::next(std::chrono::milliseconds timeout) {
    return subscription_.inbox->take(timeout);
}

void HubSource::post(AmqpHub::Settle kind, std::uint64_t tag) {
    subscription_.inbox->check();
    hub_->settle(subscription_, kind, tag);
}

}  // namespace rmq2pg
