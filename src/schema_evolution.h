// schema_evolution: basic, the pure part: a Debezium change event's schema → the columns it
// needs (PostgreSQL types from the Debezium/Kafka Connect type table, key from the message key's
// schema), and the diff against the table: CREATE TABLE or ADD COLUMN statements, or why a
// field's type conflicts with its column. The DDL runs in pg_schema_evolution.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "table_schema.h"

namespace rmq2pg {

// One field of a row image as a column: its name and the type a new column gets.
struct FieldColumn {
    std::string name;
    std::string type;  // "bigint", "numeric", "timestamp", "jsonb", "integer[]", ...
};

// What one change event asks of its table.
struct EventColumns {
    bool skip = false;                // a tombstone or a truncate: no row to write
    bool has_schema = false;          // a wrapped change event with its image's schema
    std::vector<FieldColumn> fields;  // in the schema's order
    std::vector<std::string> key;     // the message key's fields (empty when it has none)
};

// The column type of a field from its schema ({"type":…, "name":…, "items":…}): Kafka Connect
// int8/int16 → smallint, int32 → integer, int64 → bigint, float32 → real, float64 → double
// precision, boolean, string → text, bytes → bytea; logical types: Decimal and
// VariableScaleDecimal → numeric, Date → date, Time/MicroTime/NanoTime → time, Timestamp/
// MicroTimestamp/NanoTimestamp → timestamp, ZonedTimestamp → timestamptz, ZonedTime → timetz,
// MicroDuration → interval, Json → jsonb, Uuid → uuid, Xml → xml; arrays of those → T[];
// struct and map → jsonb. `type` and `name` are the field schema's; `items_*` its items'.
std::string column_type_of(std::string_view type, std::string_view name,
                           std::string_view items_type = {}, std::string_view items_name = {});

// Reads a (decoded) body and its message key (message_id; "" when none) into `out`. Returns why
// not when the body is no change event (the mapper says so again, as poison). A tombstone, a
// truncate or a bare event leaves out.has_schema false.
std::optional<std::string> read_event_columns(std::string_view body, std::string_view message_key,
                                              EventColumns& out);

// Whether a column of type `column_type` (format_type's text) can hold values of a field whose
// own column would be `wanted`: the same type, a wider number, text or json(b) (they take
// anything), or a string field (PostgreSQL parses text into any type; a bad value is a bad row).
bool column_accepts(const std::string& column_type, const std::string& wanted);

// The statements that make `table` hold `fields`: CREATE TABLE IF NOT EXISTS when the table does
// not exist (`key` its primary key, `version_column` numeric), else one ALTER TABLE … ADD COLUMN
// IF NOT EXISTS per missing field (nullable). Empty when nothing is missing. Sets `why` and
// returns nothing when the table must be created and `key` is empty or names no field.
std::vector<std::string> evolution_statements(const TableSchema& table,
                                              const std::vector<FieldColumn>& fields,
                                              const std::vector<std::string>& key,
                                              const std::string& version_column, std::string& why);

// Why `event`'s fields cannot go into `table` as it is (a field whose type its column cannot
// hold: never retyped), or nothing.
std::optional<std::string> evolution_conflict(const TableSchema& table, const EventColumns& event);

}  // namespace rmq2pg
