// A stream's end and a partition's lag; see stream_end.h.
#include "stream_end.h"

#include <cstdlib>

#include "amqp_session.h"

namespace rmq2pg {

std::optional<std::int64_t> end_offset_of(const StreamEnd& end) {
    if (!end.known)
        return std::nullopt;
    if (end.messages == 0)
        return end.first_offset;  // an empty stream ends where it begins, if that is known
    if (!end.first_offset)
        return std::nullopt;
    return *end.first_offset + end.messages;
}

std::optional<std::int64_t> stream_lag(const StreamEnd& end,
                                       std::optional<std::int64_t> next_offset) {
    if (!next_offset || !end.known)
        return std::nullopt;
    if (end.messages == 0 && !end.first_offset)
        return 0;  // nothing held: nothing to read
    auto last = end_offset_of(end);
    if (!last)
        return std::nullopt;
    // The broker's count is up to 5 s old: a committed offset past it reads as no lag.
    return *last > *next_offset ? *last - *next_offset : 0;
}

const StreamEnd* find_stream_end(const std::vector<StreamEnd>& ends, const std::string& stream) {
    for (const auto& end : ends)
        if (end.stream == stream)
            return &end;
    return nullptr;
}

std::optional<std::int64_t> probe_first_offset(const AmqpUrl& url, int heartbeat_s,
                                               const std::string& stream,
                                               std::chrono::milliseconds timeout) {
    AmqpSession session(url, heartbeat_s, "rmq2pg status poller: first offset of " + stream);
    // Prefetch 1: the broker sends one message of the first chunk, not the chunk.
    session.consume_stream(stream, 1, "rmq2pg-first-offset", AmqpSession::StreamOffset{});
    auto delivery = session.next_delivery(timeout);
    if (!delivery)
        return std::nullopt;
    auto offset = delivery->header("x-stream-offset");
    if (!offset)
        return std::nullopt;  // not a stream after all: nothing to measure
    return std::strtoll(offset->text.c_str(), nullptr, 10);
    // Closing the connection ends the consumer; nothing to ack on a stream.
}

}  // namespace rmq2pg
