// Logging setup; see logging.h. Two pieces sit between spdlog and stderr: a JSON formatter (for
// log shippers: one object per line with time, level, message) and a sink that folds repeated
// error lines of one kind (a database outage must not flood the journal with one line per retry
// of every worker of every pipeline).
#include "logging.h"

#include "rfc3339.h"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <mutex>

#include "json_escape.h"

namespace rmq2pg {

std::string fold_key(const std::string& line) {
    std::string key;
    key.reserve(line.size());
    std::size_t i = 0;
    if (!line.empty() && line[0] == '[') {
        std::size_t close = line.find(']');
        if (close != std::string::npos && line.find('/') < close) {
            key = "[*]";
            i = close + 1;
        }
    }
    while (i < line.size()) {
        char c = line[i];
        if (c >= '0' && c <= '9') {
            key += '#';
            while (i < line.size() && line[i] >= '0' && line[i] <= '9')
                ++i;
            continue;
        }
        if (c == '\'' || c == '"') {
            // A value quoted in a message (a table, a key, a value PostgreSQL quotes); an
            // unpaired quote (an apostrophe) stays as it is.
            std::size_t close = line.find(c, i + 1);
            if (close != std::string::npos) {
                key += c;
                key += c;
                i = close + 1;
                continue;
            }
        }
        key += c;
        ++i;
    }
    return key;
}

bool RepeatFilter::note_identity(Window& window, const std::string& line) {
    if (line.empty() || line[0] != '[')
        return false;
    std::size_t close = line.find(']');
    std::size_t slash = line.rfind('/', close);
    if (close == std::string::npos || slash == std::string::npos || slash == 0)
        return false;
    if (window.identities.size() >= kMaxIdentities) {
        window.summary.capped = true;
        return false;
    }
    if (!window.identities.insert(line.substr(1, close - 1)).second)
        return false;
    window.summary.workers = window.identities.size();
    std::string pipeline = line.substr(1, slash - 1);
    if (window.pipelines.insert(pipeline).second)
        window.summary.pipelines.push_back(pipeline);
    return true;
}

bool RepeatFilter::admit(const std::string& line, int level,
                         std::chrono::steady_clock::time_point now) {
    std::string key = fold_key(line);
    auto it = windows_.find(key);
    if (it != windows_.end() && now - it->second.first < kWindow) {
        Window& window = it->second;
        if (note_identity(window, line) && window.identities_written < kIdentitiesWritten) {
            ++window.identities_written;
            return true;
        }
        ++window.summary.repeats;
        return false;
    }
    if (it == windows_.end()) {
        if (windows_.size() >= kMaxTracked)
            return true;
        it = windows_.emplace(key, Window{}).first;
    }
    // A new window, or an ended one without repeats started anew.
    it->second = Window{};
    it->second.first = now;
    it->second.summary.first_line = line;
    it->second.summary.level = level;
    if (note_identity(it->second, line))
        it->second.identities_written = 1;
    return true;
}

std::vector<RepeatFilter::Summary> RepeatFilter::expire(std::chrono::steady_clock::time_point now) {
    std::vector<Summary> out;
    for (auto it = windows_.begin(); it != windows_.end();) {
        if (now - it->second.first >= kWindow) {
            if (it->second.summary.repeats > 0)
                out.push_back(std::move(it->second.summary));
            it = windows_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::vector<RepeatFilter::Summary> RepeatFilter::drain() {
    std::vector<Summary> out;
    for (auto& [key, window] : windows_)
        if (window.summary.repeats > 0)
            out.push_back(std::move(window.summary));
    windows_.clear();
    return out;
}

std::string repeat_summary(const RepeatFilter::Summary& s) {
    std::string out = s.first_line + " (repeated " + std::to_string(s.repeats) +
                      " times in the last " + std::to_string(RepeatFilter::kWindow.count()) + " s";
    if (s.workers > 1) {
        // The names of a few pipelines show what failed; the counts say how widely.
        constexpr std::size_t kNamed = 5;
        const char* at_least = s.capped ? "at least " : "";
        out += ", from " + std::string(at_least) + std::to_string(s.pipelines.size()) +
               (s.pipelines.size() == 1 ? " pipeline (" : " pipelines (") + at_least +
               std::to_string(s.workers) + " workers): ";
        for (std::size_t i = 0; i < s.pipelines.size() && i < kNamed; ++i)
            out += (i == 0 ? "" : ", ") + s.pipelines[i];
        if (s.pipelines.size() > kNamed)
            out += ", …";
    }
    return out + ")";
}

namespace {

// {"time":"2024-05-01T12:00:00.123Z","level":"info","message":"..."}
class JsonFormatter : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        line_.clear();
        line_ += "{\"time\":\"";
        line_ += rfc3339(msg.time, /*milliseconds=*/true);
        line_ += "\",\"level\":";
        auto level = spdlog::level::to_string_view(msg.level);
        append_json_string(line_, std::string_view(level.data(), level.size()));
        line_ += ",\"message\":";
        append_json_string(line_, std::string_view(msg.payload.data(), msg.payload.size()));
        line_ += "}\n";
        dest.append(line_.data(), line_.data() + line_.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }

  private:
    std::string line_;
};

// Passes lines on to `inner`, folding repeated error and critical lines with RepeatFilter.
// Summaries of ended windows go out with the next line of any level (the progress line comes
// every 10 s) or when the sink is destroyed. base_sink's mutex serialises every call.
class RepeatFoldingSink : public spdlog::sinks::base_sink<std::mutex> {
  public:
    explicit RepeatFoldingSink(std::shared_ptr<spdlog::sinks::sink> inner)
        : inner_(std::move(inner)) {}
    ~RepeatFoldingSink() override {
        std::lock_guard<std::mutex> guard(mutex_);
        for (const auto& s : filter_.drain())
            write_summary(s);
        inner_->flush();
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        auto now = std::chrono::steady_clock::now();
        for (const auto& s : filter_.expire(now))
            write_summary(s);
        if (msg.level >= spdlog::level::err) {
            std::string line(msg.payload.data(), msg.payload.size());
            if (!filter_.admit(line, static_cast<int>(msg.level), now))
                return;
        }
        inner_->log(msg);
    }
    void flush_() override { inner_->flush(); }

  private:
    void write_summary(const RepeatFilter::Summary& s) {
        std::string text = repeat_summary(s);
        spdlog::details::log_msg summary(spdlog::source_loc{}, "rmq2pg",
                                         static_cast<spdlog::level::level_enum>(s.level), text);
        inner_->log(summary);
    }

    std::shared_ptr<spdlog::sinks::sink> inner_;
    RepeatFilter filter_;
};

}  // namespace

void init_logging(const std::string& level, const std::string& format) {
    // stderr, unbuffered by spdlog's stdout_sinks: journald and docker logs both read it.
    auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    if (format == "json")
        stderr_sink->set_formatter(std::make_unique<JsonFormatter>());
    else
        stderr_sink->set_formatter(
            std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e%z %l %v"));
    auto logger = std::make_shared<spdlog::logger>(
        "rmq2pg", std::make_shared<RepeatFoldingSink>(std::move(stderr_sink)));
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

}  // namespace rmq2pg
