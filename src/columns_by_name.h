// A target as the writer and the mapper use it: the config's target with what the catalog
// settles, i.e. columns by name (every table column takes the top-level field of its name) and
// the key defaulting to the primary key. Pure: the writer and the worker both call it.
#pragma once

#include <string>

#include "config.h"
#include "table_schema.h"

namespace rmq2pg {

// `target` unchanged when its columns were mapped (but for format: debezium, which adds its
// version column); else one json_pointer mapping per column of `table`, in catalog order.
TargetConfig resolve_target(const PipelineConfig& pipeline, const TargetConfig& target,
                            const TableSchema& table);

// "/name" with ~ and / escaped (RFC 6901).
std::string pointer_to_field(const std::string& name);

}  // namespace rmq2pg
