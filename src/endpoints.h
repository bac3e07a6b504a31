// What a worker connects to: its source, its writer and its dead-letter sink. BrokerEndpoints
// opens RabbitMQ and PostgreSQL connections from the config; the worker's unit tests hand fakes
// of the same interfaces. Owned and used by one worker thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "amqp_hub.h"
#include "batch_writer.h"
#include "config.h"
#include "dead_letter.h"
#include "dead_letter_sink.h"
#include "pg_pool.h"
#include "source.h"
#include "stream_offsets.h"

namespace rmq2pg {

class Endpoints {
  public:
    virtual ~Endpoints() = default;
    // Connects and starts consuming. Throws AmqpError.
    virtual std::unique_ptr<Source> open_source() = 0;
    // Streams: connects and consumes the streams `claims` hold, each from where its claim says.
    // Throws AmqpError.
    virtual std::unique_ptr<Source> open_stream_source(const std::vector<StreamClaim>& claims) = 0;
    // A writer, not yet connected (the worker connects it under its write guard).
    virtual std::unique_ptr<BatchWriter> open_writer() = 0;
    virtual DeadLetterSink& dead_letters() = 0;
    // After a broker failure: the next source and dead letters go to the next broker URL.
    virtual void broker_failed() = 0;
    // Where the source is, for log lines.
    virtual std::string source_description() const = 0;
};

class BrokerEndpoints : public Endpoints {
  public:
    BrokerEndpoints(const Config& config, const PipelineConfig& pipeline, int index);

    std::unique_ptr<Source> open_source() override;
    std::unique_ptr<Source> open_stream_source(const std::vector<StreamClaim>& claims) override;
    std::unique_ptr<BatchWriter> open_writer() override;
    DeadLetterSink& dead_letters() override {
        return shared_dead_letters_ ? static_cast<DeadLetterSink&>(*shared_dead_letters_)
                                    : dead_letters_;
    }
    void broker_failed() override;
    std::string source_description() const override;
    // The queue is consumed on a channel of `hub` (amqp.connections) instead of a connection
    // of the worker's own; streams keep their own. `hub` outlives the worker.
    // Its dead letters go through the hub's shared publisher too.
    void use_hub(std::shared_ptr<AmqpHub> hub);

  private:
    const Config& config_;
    const PipelineConfig& pipeline_;
    const int index_;
    std::size_t url_index_;  // the amqp.urls entry in use
    DeadLetterPublisher dead_letters_;
    std::shared_ptr<AmqpHub> hub_;
    std::unique_ptr<SharedDeadLetterSink> shared_dead_letters_;
};

// The same broker connections, with batches written through the daemon's PostgreSQL pool
// (postgres.pool_size) instead of a connection of the worker's own. `pool` outlives the worker.
class PooledEndpoints : public BrokerEndpoints {
  public:
    PooledEndpoints(const Config& config, const PipelineConfig& pipeline, int index,
                    std::shared_ptr<PgPool> pool);
    std::unique_ptr<BatchWriter> open_writer() override;

  private:
    const Config& config_;
    const PipelineConfig& pipeline_;
    const int index_;
    std::shared_ptr<PgPool> pool_;
};

}  // namespace rmq2pg
