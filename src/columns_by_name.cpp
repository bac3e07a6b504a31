// Columns by name and the default key; see columns_by_name.h.
#include "columns_by_name.h"

#include <algorithm>

#include "json_pointer.h"

namespace rmq2pg {

std::string pointer_to_field(const std::string& name) {
    return "/" + escape_json_pointer_token(name);
}

TargetConfig resolve_target(const PipelineConfig& pipeline, const TargetConfig& target,
                            const TableSchema& table) {
    TargetConfig resolved = target;
    if (resolved.columns.empty()) {
        resolved.columns_by_name = true;
        for (const auto& column : table.columns) {
            if (column.generated)
                continue;
            ColumnMapping mapping;
            mapping.column = column.name;
            mapping.source.kind = ColumnSource::Kind::json_pointer;
            mapping.source.argument = pointer_to_field(column.name);
            mapping.source_text = mapping.source.argument;
            mapping.column_default = column.default_expr;
            resolved.columns.push_back(std::move(mapping));
        }
        if (resolved.key.empty())
            resolved.key = table.primary_key;
        // A row is upserted by its key's values: a key left to its DEFAULT has none yet (rows
        // without it would be one key, NULL), so an absent key field stays NULL and is refused.
        if (resolved.mode != WriteMode::insert)
            for (auto& mapping : resolved.columns)
                if (std::find(resolved.key.begin(), resolved.key.end(), mapping.column) !=
                    resolved.key.end())
                    mapping.column_default.clear();
    } else if (resolved.key.empty() && pipeline.format == MessageFormat::debezium) {
        resolved.key = table.primary_key;
    }
    if (pipeline.format == MessageFormat::debezium && !resolved.version.empty()) {
        bool mapped = false;
        for (const auto& c : resolved.columns)
            mapped = mapped || c.column == resolved.version;
        if (!mapped) {
            // Filled from the event's source position, not from a field (debezium_mapper.cpp).
            ColumnMapping mapping;
            mapping.column = resolved.version;
            mapping.source_text = "the change's position in the source log";
            mapping.source.kind = ColumnSource::Kind::json_pointer;
            mapping.source.argument = pointer_to_field(resolved.version);
            resolved.columns.push_back(std::move(mapping));
        }
    }
    return resolved;
}

}  // namespace rmq2pg
