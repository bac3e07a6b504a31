// A queue consumed over AMQP as a worker's Source; see queue_source.h.
#include "queue_source.h"

namespace rmq2pg {

QueueSource::QueueSource(const Config& config, const PipelineConfig& pipeline, const AmqpUrl& url,
                         const std::string& connection_name, const std::string& consumer_tag)
    : session_(url, config.heartbeat_s, connection_name) {
    for (const auto& exchange : config.exchanges)
        session_.declare_exchange(exchange);
    if (pipeline.declare)
        session_.declare_queue(pipeline.queue, *pipeline.declare);
    session_.start_consuming(pipeline.queue, static_cast<std::uint16_t>(pipeline.prefetch),
                             consumer_tag);
}

std::optional<Delivery> QueueSource::next(std::chrono::milliseconds timeout) {
    return session_.next_delivery(timeout);
}

std::chrono::milliseconds QueueSource::keep_alive_interval() const {
    // Half the negotiated heartbeat: the broker closes after two missed intervals.
    return std::chrono::milliseconds(session_.heartbeat_interval()) / 2;
}

}  // namespace rmq2pg
