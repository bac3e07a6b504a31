// The daemon's endpoints of a worker: RabbitMQ and PostgreSQL from the config; see endpoints.h.
#include "endpoints.h"

#include <unistd.h>

#include "hub_source.h"
#include "pg_writer.h"
#include "pooled_writer.h"
#include "queue_source.h"
#include "stream_source.h"

namespace rmq2pg {

namespace {

std::string hostname() {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    return buf;
}

}  // namespace

BrokerEndpoints::BrokerEndpoints(const Config& config, const PipelineConfig& pipeline, int index)
    : config_(config),
      pipeline_(pipeline),
      index_(index),
      // Workers of one pipeline start on different brokers of a cluster.
      url_index_(static_cast<std::size_t>(index) % config.amqp_urls.size()),
      dead_letters_(
          config, pipeline,
          "rmq2pg " + pipeline.name + "/" + std::to_string(index) + " dead-letter publisher",
          config.amqp_urls[url_index_]) {}

std::unique_ptr<Source> BrokerEndpoints::open_source() {
    std::string worker = pipeline_.name + "/" + std::to_string(index_);
    std::string host = hostname();
    std::string pid = std::to_string(getpid());
    if (hub_)
        return std::make_unique<HubSource>(
            hub_, pipeline_,
            "rmq2pg-" + pipeline_.name + "-" + std::to_string(index_) + "-" + host + "-" + pid);
    return std::make_unique<QueueSource>(
        config_, pipeline_, config_.amqp_urls[url_index_],
        "rmq2pg " + worker + " on " + host + " pid " + pid,
        "rmq2pg-" + pipeline_.name + "-" + std::to_string(index_) + "-" + host + "-" + pid);
}

std::unique_ptr<Source> BrokerEndpoints::open_stream_source(
    const std::vector<StreamClaim>& claims) {
    std::string worker = pipeline_.name + "/" + std::to_string(index_);
    std::string host = hostname();
    std::string pid = std::to_string(getpid());
    return std::make_unique<StreamSource>(
        config_, pipeline_, config_.amqp_urls[url_index_],
        "rmq2pg " + worker + " on " + host + " pid " + pid,
        "rmq2pg-" + pipeline_.name + "-" + std::to_string(index_) + "-" + host + "-" + pid, claims);
}

std::unique_ptr<BatchWriter> BrokerEndpoints::open_writer() {
    return std::make_unique<PgWriter>(
        PgConnectionSettings::of(config_,
                                 "rmq2pg/" + pipeline_.name + "/" + std::to_string(index_)),
        pipeline_);
}

void BrokerEndpoints::use_hub(std::shared_ptr<AmqpHub> hub) {
    shared_dead_letters_ = std::make_unique<SharedDeadLetterSink>(hub->dead_letters(), pipeline_);
    hub_ = std::move(hub);
}

void BrokerEndpoints::broker_failed() {
    dead_letters_.reset();
    url_index_ = (url_index_ + 1) % config_.amqp_urls.size();
    dead_letters_.use_url(config_.amqp_urls[url_index_]);
}

std::string BrokerEndpoints::source_description() const {
    if (pipeline_.is_stream())
        return "streams on " + config_.amqp_urls[url_index_].masked();
    if (hub_)
        return "queue '" + pipeline_.queue + "' on " + hub_->connection_name();
    return "queue '" + pipeline_.queue + "' on " + config_.amqp_urls[url_index_].masked();
}

PooledEndpoints::PooledEndpoints(const Config& config, const PipelineConfig& pipeline, int index,
                                 std::shared_ptr<PgPool> pool)
    : BrokerEndpoints(config, pipeline, index),
      config_(config),
      pipeline_(pipeline),
      index_(index),
      pool_(std::move(pool)) {}

std::unique_ptr<BatchWriter> PooledEndpoints::open_writer() {
    std::string who = "rmq2pg/" + pipeline_.name + "/" + std::to_string(index_);
    return std::make_unique<PooledWriter>(*pool_, PgConnectionSettings::of(config_, who), pipeline_,
                                          who);
}

}  // namespace rmq2pg
