// Logging setup: one spdlog logger for the whole process, stderr, level and format (text or one
// JSON object per line) from the config, and repeated error lines folded into one summary.
// Lines carry their identity themselves ("[orders/1] ..."), see worker.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace rmq2pg {

// `format`: "text" or "json" (validated by the config loader).
void init_logging(const std::string& level, const std::string& format = "text");

// Which error lines to write when the same one repeats: the first of a 10 s window is written,
// the repeats inside the window are counted, and when the window ends one summary carries the
// count. Pure: handed the line and "now". Keys are the exact text (with its level), so lines
// that differ in a number are not folded.
class RepeatFilter {
  public:
    static constexpr std::chrono::seconds kWindow{10};
    // Distinct lines tracked at once; beyond that new lines pass unfiltered (bounded memory).
    static constexpr std::size_t kMaxTracked = 1024;

    struct Summary {
        std::string key;
        int level = 0;
        std::uint64_t repeats = 0;
    };

    // True: write the line. False: it repeats one written less than kWindow ago.
    bool admit(const std::string& key, int level, std::chrono::steady_clock::time_point now);
    // Forgets windows that ended by `now`; returns those that had repeats, to be summarised.
    std::vector<Summary> expire(std::chrono::steady_clock::time_point now);
    // Every window with repeats, ended or not (at shutdown).
    std::vector<Summary> drain();

  private:
    struct Window {
        std::chrono::steady_clock::time_point first;
        int level = 0;
        std::uint64_t repeats = 0;
    };
    std::unordered_map<std::string, Window> windows_;
};

// "<line> (repeated N times in the last 10 s)".
std::string repeat_summary(const std::string& line, std::uint64_t repeats);

}  // namespace rmq2pg
