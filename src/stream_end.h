// Where a stream ends, as far as RabbitMQ 3.10 tells an AMQP 0-9-1 client, and the lag of a
// partition behind it. The broker gives two figures: queue.declare passive answers a stream's
// message_count = last offset + 1 - first offset (refreshed every stream_tick_interval, 5 s),
// and a consumer reading from "first" receives the first offset held in x-stream-offset. Their
// sum is the offset the next message will get; minus the committed next offset, the lag.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "amqp_url.h"

namespace rmq2pg {

// The broker's readings of one stream (the status poller's).
struct StreamEnd {
    std::string stream;
    bool known = false;          // false until message_count was read once
    std::uint32_t messages = 0;  // queue.declare passive: what the stream holds now
    // The offset of the oldest message the stream holds (retention moves it); nullopt until
    // probed, or while the stream is empty.
    std::optional<std::int64_t> first_offset;
    std::chrono::system_clock::time_point at;        // of the last message_count read
    std::chrono::steady_clock::time_point probed{};  // of the last first-offset probe
    std::string error;                               // of the last poll, empty when it succeeded
};

// The offset the stream's next message will get (its end): nullopt when unknown (not read yet,
// or messages held but the first offset not probed yet).
std::optional<std::int64_t> end_offset_of(const StreamEnd& end);

// Messages between `next_offset` (committed) and the stream's end, never negative; nullopt when
// either is unknown (a stream never committed has no position to measure from).
std::optional<std::int64_t> stream_lag(const StreamEnd& end,
                                       std::optional<std::int64_t> next_offset);

// The reading of `stream` among `ends`; nullptr when it has none.
const StreamEnd* find_stream_end(const std::vector<StreamEnd>& ends, const std::string& stream);

// Reads the first offset a stream holds: a consumer from "first" with a prefetch of 1 on a
// connection of its own, closed after the first delivery. Nullopt when no message arrives
// within `timeout` (an empty stream). Throws AmqpError (no such stream: channel).
std::optional<std::int64_t> probe_first_offset(const AmqpUrl& url, int heartbeat_s,
                                               const std::string& stream,
                                               std::chrono::milliseconds timeout);

}  // namespace rmq2pg
