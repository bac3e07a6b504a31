// Dead letters and the bounding of reasons; see dead_letter.h.
#include "dead_letter.h"

#include "rfc3339.h"

namespace rmq2pg {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026

// Where a long quoted value ends up cut: PostgreSQL quotes the value twice (message, CONTEXT),
// and what matters is the wording around it and the SQLSTATE at the end.
constexpr std::size_t kValueLimit = 128;

// A cut at or before `at` that does not split a UTF-8 sequence.
std::size_t utf8_floor(std::string_view text, std::size_t at) {
    while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80)
        --at;
    return at;
}

// Copies `text`, handing each value PostgreSQL and rmq2pg quote in their messages to
// `rewrite(value, out)` instead of copying it:
// - `…: "abc"` (PostgreSQL's `invalid input syntax for type bigint: "abc"`, its CONTEXT lines),
// - `=(42)` (PostgreSQL's `DETAIL: Key (id)=(42) already exists.`),
// - with `single_quotes`, `…: 'abc'` and `got 'abc'` (rmq2pg's mapping reasons).
// A value that never closes runs to the end of the text.
template <typename Rewrite>
std::string rewrite_values(std::string_view text, bool single_quotes, Rewrite&& rewrite) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        bool after_colon = i >= 2 && text[i - 1] == ' ' && text[i - 2] == ':';
        bool after_got = i >= 4 && text.substr(i - 4, 4) == "got ";
        char close = 0;
        if (c == '"' && after_colon)
            close = '"';
        else if (c == '(' && i > 0 && text[i - 1] == '=')
            close = ')';
        else if (single_quotes && c == '\'' && (after_colon || after_got))
            close = '\'';
        out += c;
        ++i;
        if (close == 0)
            continue;
        std::size_t end = text.find(close, i);
        rewrite(text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i),
                out);
        if (end == std::string_view::npos)
            break;
        out += close;
        i = end + 1;
    }
    return out;
}

// Every quoted value longer than kValueLimit cut to its start, an ellipsis and its length.
std::string shorten_values(std::string_view text) {
    return rewrite_values(text, false, [](std::string_view value, std::string& out) {
        if (value.size() <= kValueLimit) {
            out.append(value);
            return;
        }
        out.append(value.substr(0, utf8_floor(value, kValueLimit)));
        out += std::string(kEllipsis) + "(" + std::to_string(value.size()) + " bytes)";
    });
}

}  // namespace

std::string redact_values(std::string_view text) {
    return rewrite_values(text, true, [](std::string_view, std::string& out) { out += kEllipsis; });
}

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
    std::vector<std::pair<std::string, std::string>> headers = {
        {"x-rmq2pg-error", reason},
        {"x-rmq2pg-pipeline", pipeline.name},
        {"x-rmq2pg-table", pipeline.qualified_table()},
        {"x-original-exchange", std::string(delivery.exchange)},
        {"x-original-routing-key", std::string(delivery.routing_key)},

        {"x-rmq2pg-failed-at", rfc3339(std::chrono::system_clock::now(), true)},
    };
    if (delivery.stream_offset) {
        headers.emplace_back("x-rmq2pg-stream", std::string(delivery.stream));
        headers.emplace_back("x-rmq2pg-stream-offset", std::to_string(*delivery.stream_offset));
    }
    return headers;
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
        ensured_.clear();
    }
    return *session_;
}

namespace {

// Publishes `delivery` with its reason headers to the pipeline's dead-letter target on the
// session `session_for(routing_key)` gives; `drop()` forgets that session after any failure.
// Kind::unpublishable is answered by a second try without the message's own headers.
template <class SessionFor, class Drop>
void publish_dead_letter(const PipelineConfig& pipeline, const Delivery& delivery,
                         const std::string& reason, SessionFor session_for, Drop drop) {
    auto headers = dead_letter_headers(pipeline, delivery, reason);
    const std::string routing_key = pipeline.dead_letter_routing_key(delivery.stream);
    try {
        session_for(routing_key)
            .publish_confirmed(pipeline.dead_letter.exchange, routing_key, delivery, headers);
        return;
    } catch (const AmqpError& e) {
        drop();
        if (e.kind() != AmqpError::Kind::unpublishable)
            throw;
    }
    // Our headers are bounded, so what did not fit is the message's own headers: the body and
    // the reason matter more than headers the broker took from the producer.
    Delivery bare;
    bare.exchange = delivery.exchange;
    bare.routing_key = delivery.routing_key;
    bare.body = delivery.body;
    bare.stream = delivery.stream;
    bare.stream_offset = delivery.stream_offset;
    headers.emplace_back("x-rmq2pg-original-headers", "dropped: they do not fit one AMQP frame");
    try {
        session_for(routing_key)
            .publish_confirmed(pipeline.dead_letter.exchange, routing_key, bare, headers);
    } catch (const AmqpError&) {
        drop();
        throw;
    }
}

// The session with `routing_key`'s queue ensured when `pipeline` declares it. Declared here, not
// when consuming starts: a classic "<queue>.dead" whose home node is down must not stop a
// worker from failing over to another node and consuming (only dead-lettering waits for it). A
// pipeline of streams has one per stream.
AmqpSession& ensured_for(AmqpSession& session, std::set<std::string>& ensured,
                         const PipelineConfig& pipeline, const std::string& routing_key) {
    if (pipeline.declares_dead_letter_queue() && ensured.count(routing_key) == 0) {
        session.ensure_queue(routing_key);
        ensured.insert(routing_key);
    }
    return session;
}

}  // namespace

AmqpSession& DeadLetterPublisher::session_for(const std::string& routing_key) {
    return ensured_for(session(), ensured_, pipeline_, routing_key);
}

void DeadLetterPublisher::publish(const Delivery& delivery, const std::string& reason) {
    publish_dead_letter(
        pipeline_, delivery, reason,
        [this](const std::string& routing_key) -> AmqpSession& { return session_for(routing_key); },
        [this] { session_.reset(); });
}

SharedDeadLetters::SharedDeadLetters(const Config& config, std::string connection_name,
                                     std::size_t url_index)
    : config_(config), connection_name_(std::move(connection_name)), url_index_(url_index) {}

void SharedDeadLetters::publish(const PipelineConfig& pipeline, const Delivery& delivery,
                                const std::string& reason) {
    std::lock_guard<std::mutex> guard(lock_);
    auto session_for = [&](const std::string& routing_key) -> AmqpSession& {
        if (!session_) {
            session_ = std::make_unique<AmqpSession>(config_.amqp_urls[url_index_],
                                                     config_.heartbeat_s, connection_name_);
            ensured_.clear();
        }
        return ensured_for(*session_, ensured_, pipeline, routing_key);
    };
    auto drop = [&] {
        session_.reset();
        url_index_ = (url_index_ + 1) % config_.amqp_urls.size();
    };
    publish_dead_letter(pipeline, delivery, reason, session_for, drop);
}

void SharedDeadLetters::reset() {
    std::lock_guard<std::mutex> guard(lock_);
    session_.reset();
}

}  // namespace rmq2pg
