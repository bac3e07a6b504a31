// How many shared AMQP connections; see hub_plan.h.
#include "hub_plan.h"

#include <algorithm>

namespace rmq2pg {

int queue_workers(const Config& config) {
    int workers = 0;
    for (const auto& pipeline : config.pipelines)
        if (!pipeline.is_stream())
            workers += pipeline.workers;
    return workers;
}

int hub_count(const Config& config) {
    int workers = queue_workers(config);
    if (workers == 0)
        return 0;
    if (config.amqp_connections > 0)
        return std::min(config.amqp_connections, workers);
    if (!uses_pg_pool(config))
        return 0;
    return (workers + kChannelsPerHub - 1) / kChannelsPerHub;
}

}  // namespace rmq2pg
