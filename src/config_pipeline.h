// One entry of `pipelines:` read into a PipelineConfig; used by the config loader.
#pragma once

#include <string>

#include "config.h"
#include "config_reader.h"

namespace rmq2pg {

// `path` is the entry's dotted key ("pipelines[3]"), for the problems it reports.
PipelineConfig read_pipeline(ConfigReader& r, const YAML::Node& node, const std::string& path);

}  // namespace rmq2pg
