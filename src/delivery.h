// One message as received from RabbitMQ, as the rest of the pipeline sees it: views into one
// block holding the message's bytes, kept alive by `owner` until the batch is acked.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rmq2pg {

// A header value rendered for mapping; `kind` says how the text is to be read.
struct HeaderValue {
    enum class Kind { text, number, boolean, timestamp, json };
    Kind kind = Kind::text;
    std::string text;  // timestamp: seconds since the epoch
};

struct Delivery {
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::uint16_t channel = 0;  // the AMQP channel it arrived on (a shared connection's hub
                                // hands it to the worker that consumes there)
    std::string_view exchange;
    std::string_view routing_key;
    std::string_view consumer_tag;  // which of the channel's consumers it came to
    std::string_view body;
    std::string_view message_id;        // empty when absent
    std::string_view content_type;      // empty when absent
    std::string_view content_encoding;  // empty when absent (body_decoding.h reads it)
    std::optional<std::int64_t> timestamp;
    // Streams only: the stream it was read from (a view of the pipeline's config) and its offset
    // there (the broker's x-stream-offset header), set by StreamSource.
    std::string_view stream;
    std::optional<std::int64_t> stream_offset;
    // Looks a header up in the delivery's own table; null when the message has no headers.
    std::optional<HeaderValue> (*find_header)(const void* headers, std::string_view name) = nullptr;
    const void* headers = nullptr;
    // The block the views point into (with the message's AMQP properties, which a dead letter
    // carries on); opaque outside amqp_delivery.cpp.
    std::unique_ptr<void, void (*)(void*)> owner{nullptr, [](void*) {}};

    std::optional<HeaderValue> header(std::string_view name) const {
        if (find_header == nullptr || headers == nullptr)
            return std::nullopt;
        return find_header(headers, name);
    }
};

}  // namespace rmq2pg
