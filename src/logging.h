// Logging setup: one spdlog logger for the whole process, stderr, level and format (text or one
// JSON object per line) from the config, and repeated error lines folded into one summary.
// Lines carry their identity themselves ("[orders/1] ..."), see worker.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace rmq2pg {

// `format`: "text" or "json" (validated by the config loader).
void init_logging(const std::string& level, const std::string& format = "text");

// Which error lines to write when lines of the same kind repeat: the first of a 10 s window is
// written, the others inside the window are counted, and when the window ends one summary
// carries the count and which pipelines they came from. Lines are of the same kind when they
// differ only in their identity ("[orders/3]"), numbers and quoted values (fold_key), so 200
// pipelines failing alike write one line and one summary per window, not 200 of each.
// Pure: handed the line and "now".
class RepeatFilter {
  public:
    static constexpr std::chrono::seconds kWindow{10};
    // Kinds tracked at once; beyond that new kinds pass unfiltered (bounded memory).
    static constexpr std::size_t kMaxTracked = 1024;
    // Workers remembered per kind to count pipelines; beyond it the counts say "at least".
    static constexpr std::size_t kMaxIdentities = 4096;
    // Workers whose own first line of a kind is still written in a window: in a daemon of a few
    // workers every worker's failure stays visible (the operator reads which worker lost what);
    // with hundreds of pipelines the rest is folded into the summary.
    static constexpr std::size_t kIdentitiesWritten = 8;

    struct Summary {
        std::string first_line;  // the line that was written when the window opened
        int level = 0;
        std::uint64_t repeats = 0;  // lines folded into it
        // Workers ("orders/3") and pipelines the lines of the window came from, the first
        // line's included; one identity (or none) is a plain repeat.
        std::size_t workers = 0;
        std::vector<std::string> pipelines;  // in order of appearance
        bool capped = false;                 // more identities than kMaxIdentities
    };

    // True: write the line. False: it is of a kind written less than kWindow ago, by the same
    // worker or after kIdentitiesWritten workers' lines of that kind.
    bool admit(const std::string& line, int level, std::chrono::steady_clock::time_point now);
    // Forgets windows that ended by `now`; returns those that had repeats, to be summarised.
    std::vector<Summary> expire(std::chrono::steady_clock::time_point now);
    // Every window with repeats, ended or not (at shutdown).
    std::vector<Summary> drain();

  private:
    struct Window {
        std::chrono::steady_clock::time_point first;
        Summary summary;
        std::unordered_set<std::string> identities;
        std::unordered_set<std::string> pipelines;
        std::size_t identities_written = 0;
    };
    // True when the line's worker is new to the window.
    static bool note_identity(Window& window, const std::string& line);
    std::unordered_map<std::string, Window> windows_;
};

// The kind of a line: the leading "[pipeline/worker]" becomes "[*]", every run of digits "#"
// and every quoted value ('...' or "...") empty quotes.
std::string fold_key(const std::string& line);

// "<first line> (repeated N times in the last 10 s)", and when several workers wrote them
// ", from P pipelines (W workers): a, b, c, d, e, …" inside the parentheses.
std::string repeat_summary(const RepeatFilter::Summary& summary);

}  // namespace rmq2pg
