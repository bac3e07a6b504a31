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
};

struct TableSchema {
    std::string schema;
    std::string name;
    std::vector<ColumnInfo> columns;
    std::vector<std::string> primary_key;  // in the index's column order; empty when none

    const ColumnInfo* find(const std::string& column) const {
        for (const auto& c : columns)
            if (c.name == column)
                return &c;
        return nullptr;
    }
};

}  // namespace rmq2pg
