// schema_evolution: basic, the pure part; see schema_evolution.h.
#include "schema_evolution.h"

#include <simdjson.h>

#include <algorithm>

#include "debezium_envelope.h"
#include "debezium_types.h"
#include "write_plan.h"

namespace rmq2pg {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::string_view string_or_empty(object o, const char* key) {
    std::string_view out;
    if (o[key].get(out) != simdjson::SUCCESS)
        return {};
    return out;
}

// The type of a column as format_type prints it, without its modifier: "numeric(10,2)" →
// "numeric", "character varying(20)" → "character varying"; arrays keep "[]".
std::string base_type(const std::string& type) {
    std::string out;
    bool in_modifier = false;
    for (char c : type) {
        if (c == '(')
            in_modifier = true;
        else if (c == ')')
            in_modifier = false;
        else if (!in_modifier)
            out += c;
    }
    return out;
}

// Numbers by width: a column accepts a field of its own rank or below.
int integer_rank(const std::string& type) {
    if (type == "smallint")
        return 1;
    if (type == "integer")
        return 2;
    if (type == "bigint")
        return 3;
    return 0;
}

}  // namespace

std::string column_type_of(std::string_view type, std::string_view name,
                           std::string_view items_type, std::string_view items_name) {
    if (type == "array") {
        std::string item = column_type_of(items_type, items_name);
        // An array of structs, maps or arrays is one JSON document.
        return item == "jsonb" || items_type.empty() ? "jsonb" : item + "[]";
    }
    switch (logical_type_of(name, type)) {
        case LogicalType::decimal:
        case LogicalType::variable_scale_decimal:
            return "numeric";
        case LogicalType::date:
            return "date";
        case LogicalType::time_millis:
        case LogicalType::time_micros:
        case LogicalType::time_nanos:
            return "time";
        // Debezium sends a timestamp without time zone as its wall time counted from the
        // epoch in UTC: a timestamp column keeps that wall time.
        case LogicalType::timestamp_millis:
        case LogicalType::timestamp_micros:
        case LogicalType::timestamp_nanos:
            return "timestamp";
        case LogicalType::micro_duration:
            return "interval";
        case LogicalType::json:
            return "jsonb";
        case LogicalType::bytes:
            return "bytea";
        case LogicalType::none:
            break;
    }
    if (name == "io.debezium.time.ZonedTimestamp")
        return "timestamptz";
    if (name == "io.debezium.time.ZonedTime")
        return "timetz";
    if (name == "io.debezium.data.Uuid")
        return "uuid";
    if (name == "io.debezium.data.Xml")
        return "xml";
    if (type == "int8" || type == "int16")
        return "smallint";  // PostgreSQL has no one-byte integer
    if (type == "int32")
        return "integer";
    if (type == "int64")
        return "bigint";
    if (type == "float32")
        return "real";
    if (type == "float64")
        return "double precision";
    if (type == "boolean")
        return "boolean";
    if (type == "struct" || type == "map")
        return "jsonb";
    // string, Enum, EnumSet, and a named bytes type the mapper writes as sent (base64 text).
    return "text";
}

std::optional<std::string> read_event_columns(std::string_view body, std::string_view message_key,
                                              EventColumns& out) {
    out = EventColumns{};
    if (is_tombstone_body(body)) {
        out.skip = true;
        return std::nullopt;
    }
    simdjson::dom::parser parser;
    element root;
    if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS)
        return std::string("not JSON");
    ChangeEvent event;
    if (auto error = read_change_event(root, event))
        return error;
    out.skip = event.kind == ChangeEvent::Kind::skip;
    if (out.skip || !event.has_image_schema)
        return std::nullopt;
    simdjson::dom::array fields;
    if (event.image_schema["fields"].get(fields) != simdjson::SUCCESS)
        return std::nullopt;
    out.has_schema = true;
    for (element f : fields) {
        object field;
        std::string_view name;
        if (f.get_object().get(field) != simdjson::SUCCESS ||
            field["field"].get(name) != simdjson::SUCCESS)
            continue;
        object items;
        std::string_view items_type, items_name;
        if (field["items"].get(items) == simdjson::SUCCESS) {
            items_type = string_or_empty(items, "type");
            items_name = string_or_empty(items, "name");
        }
        out.fields.push_back({std::string(name), column_type_of(string_or_empty(field, "type"),
                                                                string_or_empty(field, "name"),
                                                                items_type, items_name)});
    }
    // The key's fields from the message key with its schema wrapper (the rabbitmqstream sink's
    // message_id); a bare key names its fields too.
    if (!message_key.empty()) {
        simdjson::dom::parser key_parser;
        element key_root;
        if (key_parser.parse(message_key.data(), message_key.size()).get(key_root) ==
            simdjson::SUCCESS) {
            object schema, payload;
            simdjson::dom::array key_fields;
            if (key_root["schema"].get(schema) == simdjson::SUCCESS &&
                schema["fields"].get(key_fields) == simdjson::SUCCESS) {
                for (element f : key_fields) {
                    std::string_view name;
                    if (f["field"].get(name) == simdjson::SUCCESS)
                        out.key.emplace_back(name);
                }
            } else if (key_root.get_object().get(payload) == simdjson::SUCCESS &&
                       key_root["payload"].error() != simdjson::SUCCESS) {
                for (auto [name, value] : payload)
                    out.key.emplace_back(name);
            }
        }
    }
    return std::nullopt;
}

bool column_accepts(const std::string& column_type, const std::string& wanted) {
    const std::string have = base_type(column_type);
    if (have == wanted || wanted == "text")
        return true;
    if (have == "text" || have == "character varying" || have == "character" || have == "json" ||
        have == "jsonb")
        return true;
    const bool exact_number = have == "numeric";
    if (int want_rank = integer_rank(wanted); want_rank > 0) {
        int have_rank = integer_rank(have);
        return (have_rank >= want_rank) || exact_number || have == "double precision" ||
               (have == "real" && want_rank == 1);
    }
    if (wanted == "real")
        return have == "double precision" || exact_number;
    if (wanted == "double precision")
        return exact_number;
    const auto timestamp = [](const std::string& t) {
        return t == "timestamp" || t == "timestamp without time zone" || t == "timestamptz" ||
               t == "timestamp with time zone";
    };
    if (timestamp(wanted))
        return timestamp(have);
    if (wanted == "date")
        return timestamp(have);
    if (wanted == "time")
        return have == "time without time zone" || have == "time with time zone";
    if (wanted == "timetz")
        return have == "time with time zone" || have == "time without time zone";
    return false;
}

std::vector<std::string> evolution_statements(const TableSchema& table,
                                              const std::vector<FieldColumn>& fields,
                                              const std::vector<std::string>& key,
                                              const std::string& version_column, std::string& why) {
    why.clear();
    const std::string qualified = quote_ident(table.schema) + "." + quote_ident(table.name);
    if (!table.exists) {
        if (key.empty()) {
            why = "schema_evolution: basic cannot create " + qualified +
                  ": the change has no key (no message key with its fields in message_id, and "
                  "no key: in the config)";
            return {};
        }
        std::string columns;
        for (const auto& k : key) {
            auto field = std::find_if(fields.begin(), fields.end(),
                                      [&](const FieldColumn& f) { return f.name == k; });
            if (field == fields.end()) {
                why = "schema_evolution: basic cannot create " + qualified + ": key field '" + k +
                      "' is not a field of the change's row image";
                return {};
            }
        }
        for (const auto& f : fields) {
            if (f.name == version_column)
                continue;
            bool in_key = std::find(key.begin(), key.end(), f.name) != key.end();
            columns += quote_ident(f.name) + " " + f.type + (in_key ? " NOT NULL" : "") + ", ";
        }
        std::string primary;
        for (const auto& k : key)
            primary += (primary.empty() ? "" : ", ") + quote_ident(k);
        return {"CREATE TABLE IF NOT EXISTS " + qualified + " (" + columns +
                quote_ident(version_column) + " numeric, PRIMARY KEY (" + primary + "))"};
    }
    std::vector<std::string> out;
    std::string clauses;
    for (const auto& f : fields) {
        if (table.find(f.name) != nullptr)
            continue;
        clauses += (clauses.empty() ? "" : ", ") + std::string("ADD COLUMN IF NOT EXISTS ") +
                   quote_ident(f.name) + " " + f.type;
    }
    if (table.find(version_column) == nullptr)
        clauses += (clauses.empty() ? "" : ", ") + std::string("ADD COLUMN IF NOT EXISTS ") +
                   quote_ident(version_column) + " numeric";
    if (!clauses.empty())
        out.push_back("ALTER TABLE " + qualified + " " + clauses);
    return out;
}

std::optional<std::string> evolution_conflict(const TableSchema& table, const EventColumns& event) {
    if (!table.exists)
        return std::nullopt;
    for (const auto& f : event.fields) {
        const ColumnInfo* column = table.find(f.name);
        if (column == nullptr || column_accepts(column->type_name, f.type))
            continue;
        return "field '" + f.name + "' (" + f.type + " by its schema) conflicts with column '" +
               f.name + "' of " + table.schema + "." + table.name + " (" + column->type_name +
               "): schema_evolution: basic never retypes a column";
    }
    return std::nullopt;
}

}  // namespace rmq2pg
