// How many shared AMQP connections (amqp.connections, amqp_hub.h) the daemon opens for its queue
// consumers. Pure: handed the config, unit-tested.
#pragma once

#include "config.h"

namespace rmq2pg {

// Consumers per shared connection in automatic mode: RabbitMQ's default channel_max (2047) is
// ten times more, and one hub thread keeps up with a few hundred mostly quiet queues; a busy
// one gets a connection's whole bandwidth only when it is alone on it.
constexpr int kChannelsPerHub = 200;

// Workers of the pipelines that consume queues (streams keep a connection per worker).
int queue_workers(const Config& config);

// The shared connections to open: 0 = none, every queue worker opens its own (today's layout,
// the default while the workers fit postgres.pool_size). amqp.connections K > 0: K (at most one
// per queue worker). amqp.connections 0 (automatic) in pooled mode (uses_pg_pool): one per
// kChannelsPerHub queue workers.
int hub_count(const Config& config);

}  // namespace rmq2pg
