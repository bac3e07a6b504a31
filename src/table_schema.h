// A target table as the catalog describes it: the writer reads it at start, the row mapper uses
// each column's type category to convert JSON values (the user never repeats column types).
#pragma once

#include <string>
#include <vector>

namespace rmq2pg {

// How a JSON value must be rendered for a column of this type.
enum class TypeCategory {
    text,       // anything PostgreSQL parses from text (text, numbers, uuid, ...)
    json,       // json/jsonb: the value's JSON text, strings included with their quotes
    timestamp,  // timestamp/timestamptz/date: numbers are seconds since the epoch
    boolean,
    bytea,  // strings and bodies are raw bytes, sent hex-encoded
    array,  // JSON arrays become PostgreSQL array literals
};

struct ColumnInfo {
    std::string name;
    std::string type_name;  // as format_type() prints it, for messages
    TypeCategory category = TypeCategory::text;
    bool not_null = false;
    // GENERATED ALWAYS (identity or stored expression): PostgreSQL computes it and refuses a
    // value, so columns by name leave it out.
    bool generated = false;
    // Its DEFAULT expression as pg_get_expr prints it ("" when it has none).
    std::string default_expr = {};
};

struct TableSchema {
    std::string schema;
    std::string name;
    std::vector<ColumnInfo> columns;
    std::vector<std::string> primary_key;  // in the index's column order; empty when none
    // false: the table does not exist yet (schema_evolution: basic creates it from a change).
    bool exists = true;

    const ColumnInfo* find(const std::string& column) const {
        for (const auto& c : columns)
            if (c.name == column)
                return &c;
        return nullptr;
    }
};

}  // namespace rmq2pg
