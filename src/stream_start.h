// Where a stream is read from when no offset is stored (the pipeline key `start:`) and where
// `rmq2pg replay --from` moves it: first | last | next | an offset | an RFC 3339 time | an
// interval back from now (30m, 6h, 7D). Pure: parsed from text, "now" handed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rmq2pg {

struct StreamStart {
    enum class Kind { first, last, next, offset, time, interval };
    Kind kind = Kind::first;
    std::int64_t value = 0;      // offset: the offset; time: epoch seconds; interval: seconds back
    std::string text = "first";  // as written (what rmq2pg_state keeps for a replay by time)
};

// nullopt with `error` set when `text` is none of the forms.
std::optional<StreamStart> parse_stream_start(const std::string& text, std::string& error);

// The epoch seconds a time or interval start stands for at `now_epoch_s`.
std::int64_t start_epoch_seconds(const StreamStart& start, std::int64_t now_epoch_s);

}  // namespace rmq2pg
