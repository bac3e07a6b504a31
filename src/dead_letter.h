// Where a poison message goes: the pipeline's dead-letter target, published with confirms and
// headers that say why. Also the one place that bounds (and, with log.redact_values, strips the
// values out of) a reason before it reaches a header or a log line.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp_session.h"
#include "config.h"
#include "dead_letter_sink.h"
#include "delivery.h"

namespace rmq2pg {

// Reasons in headers and log lines are at most this long: PostgreSQL repeats the offending
// value in its errors, and a 256 KiB value in a header no longer fits an AMQP frame.
constexpr std::size_t kReasonLimit = 2048;

// `text` on one line, at most `limit` bytes: cut at a UTF-8 boundary and marked
// "… (N bytes in all)". With `redact`, quoted values are replaced by "…" first.
std::string bounded_reason(std::string_view text, bool redact, std::size_t limit = kReasonLimit);

// Replaces the values PostgreSQL and rmq2pg quote in their errors — "…" after a colon, the
// (…) after "=" in a DETAIL, '…' in mapping reasons — by "…", keeping the wording and SQLSTATE.
std::string redact_values(std::string_view text);

// The headers a dead letter carries besides the original ones.
std::vector<std::pair<std::string, std::string>> dead_letter_headers(const PipelineConfig& pipeline,
                                                                     const Delivery& delivery,
                                                                     const std::string& reason);

// One broker connection for a worker's dead letters, opened on first need. Owned by the worker's
// thread.
class DeadLetterPublisher : public DeadLetterSink {
  public:
    DeadLetterPublisher(const Config& config, const PipelineConfig& pipeline,
                        std::string connection_name, const AmqpUrl& url);

    // Publishes `delivery` (body and properties) with the reason headers and waits for the
    // broker's confirm. Kind::unpublishable comes after a second try without the message's own
    // headers; any other error drops the connection (the next call reconnects).
    void publish(const Delivery& delivery, const std::string& reason) override;
    void reset() override {
        session_.reset();
        ensured_.clear();
    }
    // The broker the next connection goes to (after a failover of the worker's source).
    void use_url(const AmqpUrl& url) { url_ = &url; }

  private:
    AmqpSession& session();
    // The session, with `routing_key`'s queue ensured when the pipeline declares it.
    AmqpSession& session_for(const std::string& routing_key);

    const Config& config_;
    const PipelineConfig& pipeline_;
    std::string connection_name_;
    const AmqpUrl* url_;
    std::unique_ptr<AmqpSession> session_;
    std::set<std::string> ensured_;  // "<queue|stream>.dead" queues checked on this session
};

// One broker connection for the dead letters of every worker on a shared AMQP connection
// (amqp.connections), opened at the first dead letter: a daemon of hundreds of pipelines opens
// one per shared connection instead of one per worker that ever dead-letters. Thread
// ownership: any worker thread, one publish at a time under `lock_` (the publish waits for its
// confirm, bounded by the RPC timeout; poison messages are rare).
class SharedDeadLetters {
  public:
    SharedDeadLetters(const Config& config, std::string connection_name, std::size_t url_index);
    // As DeadLetterPublisher::publish, for `pipeline`.
    void publish(const PipelineConfig& pipeline, const Delivery& delivery,
                 const std::string& reason);
    // Drops the connection; the next publish opens one to the next of amqp.urls.
    void reset();

  private:
    const Config& config_;
    const std::string connection_name_;
    std::mutex lock_;
    std::size_t url_index_;                 // under lock_
    std::unique_ptr<AmqpSession> session_;  // under lock_
    std::set<std::string> ensured_;         // under lock_: "<queue>.dead" checked on session_
};

// A worker's view of the SharedDeadLetters of its shared connection.
class SharedDeadLetterSink : public DeadLetterSink {
  public:
    SharedDeadLetterSink(std::shared_ptr<SharedDeadLetters> shared, const PipelineConfig& pipeline)
        : shared_(std::move(shared)), pipeline_(pipeline) {}
    void publish(const Delivery& delivery, const std::string& reason) override {
        shared_->publish(pipeline_, delivery, reason);
    }
    void reset() override { shared_->reset(); }

  private:
    std::shared_ptr<SharedDeadLetters> shared_;
    const PipelineConfig& pipeline_;
};

}  // namespace rmq2pg
