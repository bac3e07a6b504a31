// Logging setup; see logging.h.
#include "logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace rmq2pg {

void init_logging(const std::string& level) {
    // stderr, unbuffered by spdlog's stdout_sinks: journald and docker logs both read it.
    auto logger = spdlog::stderr_logger_mt("rmq2pg");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

}  // namespace rmq2pg
