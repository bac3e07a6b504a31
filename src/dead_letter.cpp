// Dead letters and the bounding of reasons; see dead_letter.h.
#include "dead_letter.h"

#include <ctime>

namespace rmq2pg {

namespace {

std::string now_rfc3339() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms.count()));
    return buf;
}

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026

// Copies text from `from` up to the closing `close` (exclusive) as an ellipsis; returns the
// index after the closing character, or npos when it never closes (the rest is elided too).
std::size_t elide_until(std::string_view text, std::size_t from, char close, std::string& out) {
    std::size_t end = text.find(close, from);
    out += kEllipsis;
    if (end == std::string_view::npos)
        return std::string_view::npos;
    out += close;
    return end + 1;
}

}  // namespace

std::string redact_values(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        // PostgreSQL: `invalid input syntax for type bigint: "abc"`, `CONTEXT: … column x: "abc"`.
        bool after_colon = i >= 2 && text[i - 1] == ' ' && text[i - 2] == ':';
        if (c == '"' && after_colon) {
            out += c;
            i = elide_until(text, i + 1, '"', out);
            continue;
        }
        // PostgreSQL: `DETAIL: Key (id)=(42) already exists.`
        if (c == '(' && i > 0 && text[i - 1] == '=') {
            out += c;
            i = elide_until(text, i + 1, ')', out);
            continue;
        }
        // rmq2pg's mapping reasons quote values in single quotes after a colon or "got ".
        bool after_got = i >= 4 && text.substr(i - 4, 4) == "got ";
        if (c == '\'' && (after_colon || after_got)) {
            out += c;
            i = elide_until(text, i + 1, '\'', out);
            continue;
        }
        out += c;
        ++i;
    }
    return out;
}

namespace {

// Where a long quoted value ends up cut: PostgreSQL quotes the value twice (message, CONTEXT),
// and what matters is the wording around it and the SQLSTATE at the end.
constexpr std::size_t kValueLimit = 128;

// A cut at or before `at` that does not split a UTF-8 sequence.
std::size_t utf8_floor(std::string_view text, std::size_t at) {
    while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80)
        --at;
    return at;
}

// Shortens every quoted value longer than kValueLimit to its start, an ellipsis and its length.
std::string shorten_values(std::string_view text) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        bool after_colon = i >= 2 && text[i - 1] == ' ' && text[i - 2] == ':';
        char close = 0;
        if (c == '"' && after_colon)
            close = '"';
        else if (c == '(' && i > 0 && text[i - 1] == '=')
            close = ')';
        if (close == 0) {
            out += c;
            ++i;
            continue;
        }
        std::size_t end = text.find(close, i + 1);
        std::size_t value_end = end == std::string_view::npos ? text.size() : end;
        std::size_t length = value_end - (i + 1);
        out += c;
        if (length > kValueLimit) {
            out.append(text.substr(i + 1, utf8_floor(text, i + 1 + kValueLimit) - (i + 1)));
            out += std::string(kEllipsis) + "(" + std::to_string(length) + " bytes)";
        } else {
            out.append(text.substr(i + 1, length));
        }
        if (end == std::string_view::npos)
            break;
        out += close;
        i = end + 1;
    }
    return out;
}

}  // namespace

std::string bounded_reason(std::string_view text, bool redact, std::size_t limit) {
    std::size_t original = text.size();
    std::string shortened = redact ? redact_values(text) : shorten_values(text);
    for (auto& c : shortened)
        if (c == '\n' || c == '\r')
            c = ' ';
    if (shortened.size() <= limit && shortened.size() == original)
        return shortened;
    std::string out;
    if (shortened.size() <= limit) {
        out = std::move(shortened);
    } else {
        // Head and tail: the tail holds the SQLSTATE.
        std::size_t tail = std::min<std::size_t>(limit / 4, 256);
        std::size_t head = utf8_floor(shortened, limit - tail);
        std::size_t tail_from = shortened.size() - tail;
        while (tail_from < shortened.size() &&
               (static_cast<unsigned char>(shortened[tail_from]) & 0xC0) == 0x80)
            ++tail_from;
        out = shortened.substr(0, head) + std::string(kEllipsis) + shortened.substr(tail_from);
    }
    if (!redact)
        out += " (" + std::to_string(original) + " bytes in all)";
    return out;
}

std::vector<std::pair<std::string, std::string>> dead_letter_headers(const PipelineConfig& pipeline,
                                                                     const Delivery& delivery,
                                                                     const std::string& reason) {
    return {
        {"x-rmq2pg-error", reason},
        {"x-rmq2pg-pipeline", pipeline.name},
        {"x-rmq2pg-table", pipeline.qualified_table()},
        {"x-original-exchange", std::string(delivery.exchange)},
        {"x-original-routing-key", std::string(delivery.routing_key)},
        {"x-rmq2pg-failed-at", now_rfc3339()},
    };
}

DeadLetterPublisher::DeadLetterPublisher(const Config& config, const PipelineConfig& pipeline,
                                         std::string connection_name, const AmqpUrl& url)
    : config_(config),
      pipeline_(pipeline),
      connection_name_(std::move(connection_name)),
      url_(&url) {}

AmqpSession& DeadLetterPublisher::session() {
    if (!session_) {
        session_ = std::make_unique<AmqpSession>(*url_, config_.heartbeat_s, connection_name_);
        // Declared here, not when consuming starts: a classic "<queue>.dead" whose home node is
        // down must not stop a worker from failing over to another node and consuming (only
        // dead-lettering waits for it).
        if (pipeline_.declares_dead_letter_queue())
            session_->ensure_queue(pipeline_.dead_letter_routing_key());
    }
    return *session_;
}

void DeadLetterPublisher::publish(const Delivery& delivery, const std::string& reason) {
    auto headers = dead_letter_headers(pipeline_, delivery, reason);
    try {
        session().publish_confirmed(pipeline_.dead_letter.exchange,
                                    pipeline_.dead_letter_routing_key(), delivery, headers);
        return;
    } catch (const AmqpError& e) {
        session_.reset();
        if (e.kind() != AmqpError::Kind::unpublishable)
            throw;
    }
    // Our headers are bounded, so what did not fit is the message's own headers: the body and
    // the reason matter more than headers the broker took from the producer.
    Delivery bare;
    bare.exchange = delivery.exchange;
    bare.routing_key = delivery.routing_key;
    bare.body = delivery.body;
    headers.emplace_back("x-rmq2pg-original-headers", "dropped: they do not fit one AMQP frame");
    try {
        session().publish_confirmed(pipeline_.dead_letter.exchange,
                                    pipeline_.dead_letter_routing_key(), bare, headers);
    } catch (const AmqpError&) {
        session_.reset();
        throw;
    }
}

}  // namespace rmq2pg
