// Logging setup: one spdlog logger for the whole process, stderr, level from the config.
// Lines carry their identity themselves ("[orders/1] ..."), see worker.cpp.
#pragma once

#include <string>

namespace rmq2pg {

void init_logging(const std::string& level);

}  // namespace rmq2pg
