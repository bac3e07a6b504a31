// Streams consumed over AMQP as a worker's Source; see stream_source.h.
#include "stream_source.h"

#include <chrono>
#include <cstdlib>

namespace rmq2pg {

AmqpSession::StreamOffset stream_offset_of(const StreamClaim& claim, const StreamStart& start,
                                           std::int64_t now_epoch_s) {
    AmqpSession::StreamOffset out;
    if (claim.next_offset) {
        out.kind = AmqpSession::StreamOffset::Kind::offset;
        out.value = *claim.next_offset;
        return out;
    }
    StreamStart from = start;
    if (claim.start_at) {
        std::string error;
        if (auto parsed = parse_stream_start(*claim.start_at, error))
            from = *parsed;
    }
    switch (from.kind) {
        case StreamStart::Kind::first:
        case StreamStart::Kind::last:
        case StreamStart::Kind::next:
            out.kind = AmqpSession::StreamOffset::Kind::text;
            out.text = from.text;
            break;
        case StreamStart::Kind::offset:
            out.kind = AmqpSession::StreamOffset::Kind::offset;
            out.value = from.value;
            break;
        case StreamStart::Kind::time:
        case StreamStart::Kind::interval:
            out.kind = AmqpSession::StreamOffset::Kind::timestamp;
            out.value = start_epoch_seconds(from, now_epoch_s);
            break;
    }
    return out;
}

StreamSource::StreamSource(const Config& config, const PipelineConfig& pipeline, const AmqpUrl& url,
                           const std::string& connection_name, const std::string& consumer_tag,
                           const std::vector<StreamClaim>& claims)
    : session_(url, config.heartbeat_s, connection_name),
      ahead_max_messages_(pipeline.batch.max_messages),
      ahead_max_bytes_(pipeline.batch.max_bytes) {
    for (const auto& exchange : config.exchanges)
        session_.declare_exchange(exchange);
    auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    for (const auto& claim : claims) {
        std::size_t index = 0;
        while (index < pipeline.streams.size() && pipeline.streams[index] != claim.stream)
            ++index;
        if (index == pipeline.streams.size())
            continue;  // a stream dropped from the config since it was claimed
        if (pipeline.declare)
            session_.declare_queue(claim.stream, *pipeline.declare);
        Consumer consumer;
        consumer.tag = consumer_tag + "-" + std::to_string(index);
        consumer.stream = pipeline.streams[index];
        consumer.skip_below = claim.next_offset.value_or(0);
        session_.consume_stream(claim.stream, static_cast<std::uint16_t>(pipeline.prefetch),
                                consumer.tag, stream_offset_of(claim, pipeline.start, now_s));
        consumers_.push_back(std::move(consumer));
    }
}

std::optional<Delivery> StreamSource::next(std::chrono::milliseconds timeout) {
    if (failure_)
        throw *failure_;
    if (!ahead_.empty()) {
        Delivery delivery = std::move(ahead_.front());
        ahead_.pop_front();
        ahead_bytes_ -= delivery.body.size();
        return delivery;
    }
    return read(timeout);
}

void StreamSource::read_ahead(std::chrono::milliseconds budget) {
    auto now = std::chrono::steady_clock::now();
    auto until = now + budget;
    try {
        while (!failure_ && ahead_.size() < ahead_max_messages_ &&
               ahead_bytes_ < ahead_max_bytes_ && now < until) {
            // Only what has arrived: the worker waits for this call when its write returns.
            auto delivery = read(std::chrono::milliseconds(0));
            now = std::chrono::steady_clock::now();
            if (!delivery)
                break;
            ahead_bytes_ += delivery->body.size();
            ahead_.push_back(std::move(*delivery));
        }
        // What was read ahead gives its credit back at once (stream_source.h), so the broker
        // streams on while the batch is written.
        if (!ahead_.empty())
            credit_up_to(ahead_.back().delivery_tag);
        // The guard calls this instead of keep_alive(): the heartbeat keeps its schedule.
        auto interval = keep_alive_interval();
        if (interval.count() > 0 && now >= next_keep_alive_) {
            session_.send_heartbeat();
            next_keep_alive_ = now + interval;
        }
    } catch (const AmqpError& e) {
        failure_ = e;
    }
}

std::optional<Delivery> StreamSource::read(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto left =
            std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        auto delivery = session_.next_delivery(std::max(left, std::chrono::milliseconds(0)));
        if (!delivery)
            return std::nullopt;
        const Consumer* consumer = nullptr;
        for (const auto& c : consumers_)
            if (c.tag == delivery->consumer_tag)
                consumer = &c;
        auto offset = delivery->header("x-stream-offset");
        if (consumer == nullptr || !offset) {
            // Not one of ours, or not from a stream (no offset to store): it cannot be placed.
            throw AmqpError(AmqpError::Kind::channel,
                            "a delivery to consumer '" + std::string(delivery->consumer_tag) +
                                "' without x-stream-offset: is it a stream?");
        }
        delivery->stream = consumer->stream;
        delivery->stream_offset = std::strtoll(offset->text.c_str(), nullptr, 10);
        if (*delivery->stream_offset < consumer->skip_below) {
            credit_up_to(delivery->delivery_tag);
            if (std::chrono::steady_clock::now() >= until)
                return std::nullopt;
            continue;
        }
        return delivery;
    }
}

void StreamSource::credit_up_to(std::uint64_t tag) {
    if (tag <= acked_tag_)
        return;
    session_.ack_up_to(tag);
    acked_tag_ = tag;
}

std::chrono::milliseconds StreamSource::keep_alive_interval() const {
    // Half the negotiated heartbeat: the broker closes after two missed intervals.
    return std::chrono::milliseconds(session_.heartbeat_interval()) / 2;
}

}  // namespace rmq2pg
