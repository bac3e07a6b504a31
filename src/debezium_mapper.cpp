// Change event → COPY row; see debezium_mapper.h. Design: the body is parsed once with
// simdjson's DOM (an envelope is visited out of order: op, source, then the image's fields and
// their schema), read by debezium_envelope.cpp, and each column's value is rendered for its
// column type here. With the schema wrapper a field's logical type (debezium_types.h) decides
// its text; without it, values go in as JSON values do in format json. Numbers the DOM cannot
// hold (beyond 64 bits, 1e400) make the message poison rather than lose digits.
#include "debezium_mapper.h"

#include <simdjson.h>

#include <charconv>
#include <cstring>
#include <vector>

#include "column_conversion.h"
#include "column_defaults.h"
#include "debezium_envelope.h"
#include "debezium_types.h"
#include "json_escape.h"
#include "mapping_reasons.h"

namespace rmq2pg {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

constexpr std::string_view kNull = "\\N";

// "/name" → "name" when the pointer is one plain field (the by-name case), else nullopt.
std::optional<std::string> single_field(const std::string& pointer) {
    if (pointer.size() < 2 || pointer[0] != '/' || pointer.find('/', 1) != std::string::npos)
        return std::nullopt;
    std::string out;
    for (std::size_t i = 1; i < pointer.size(); ++i) {
        if (pointer[i] == '~' && i + 1 < pointer.size()) {
            out += pointer[i + 1] == '1' ? '/' : '~';
            ++i;
        } else {
            out += pointer[i];
        }
    }
    return out;
}

bool int64_of(element e, std::int64_t& out) {
    return e.get_int64().get(out) == simdjson::SUCCESS;
}

// "scale" of a Decimal's schema parameters: Kafka Connect writes parameters as strings.
std::optional<int> scale_of(object field_schema) {
    element scale;
    if (field_schema.at_pointer("/parameters/scale").get(scale) != simdjson::SUCCESS)
        return std::nullopt;
    std::int64_t n;
    if (scale.get_int64().get(n) == simdjson::SUCCESS)
        return static_cast<int>(n);
    std::string_view s;
    if (scale.get_string().get(s) != simdjson::SUCCESS)
        return std::nullopt;
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

}  // namespace

struct DebeziumMapper::Impl {
    struct Column {
        ColumnMapping mapping;
        ColumnInfo info;
        NumberTarget numbers;
        std::optional<std::string> field;  // the image field, when the pointer is one field
        bool is_key = false;
        bool is_version = false;
    };
    std::vector<Column> columns;
    AbsentFields absent;  // columns by name: which fields were absent (column_defaults.h)
    std::string dedupe;
    bool count_unmapped = false;
    std::uint64_t unmapped = 0;
    std::string first_unmapped;

    simdjson::dom::parser parser;
    simdjson::dom::parser key_parser;
    std::string padded;
    std::string field;
    ChangeEvent event;
    // Per message: the image schema's fields by name, in schema order.
    std::vector<std::pair<std::string_view, object>> field_schemas;

    enum class Outcome { value, missing, error };

    std::optional<object> schema_of(std::string_view name, std::size_t& hint) {
        for (std::size_t n = 0; n < field_schemas.size(); ++n) {
            std::size_t i = (hint + n) % field_schemas.size();
            if (field_schemas[i].first == name) {
                hint = i + 1;
                return field_schemas[i].second;
            }
        }
        return std::nullopt;
    }

    void append_number(element e) {
        switch (e.type()) {
            case element_type::INT64:
                field += std::to_string(int64_t(e));
                break;
            case element_type::UINT64:
                field += std::to_string(uint64_t(e));
                break;
            default: {
                // The shortest text that reads back as the same double: what was sent, for
                // every number a double holds exactly as written.
                char buf[64];
                auto [end, ec] = std::to_chars(buf, buf + sizeof buf, double(e));
                field.append(buf, ec == std::errc() ? static_cast<std::size_t>(end - buf) : 0);
            }
        }
    }

    void render_pg_array(simdjson::dom::array array) {
        field += '{';
        bool first = true;
        for (element e : array) {
            if (!first)
                field += ',';
            first = false;
            switch (e.type()) {
                case element_type::NULL_VALUE:
                    field += "NULL";
                    break;
                case element_type::ARRAY:
                    render_pg_array(simdjson::dom::array(e));
                    break;
                case element_type::STRING:
                    append_array_element_quoted(field, std::string_view(e));
                    break;
                case element_type::OBJECT:
                    append_array_element_quoted(field, simdjson::minify(e));
                    break;
                case element_type::BOOL:
                    field += bool(e) ? "true" : "false";
                    break;
                default:
                    append_number(e);
            }
        }
        field += '}';
    }

    // A value as format json renders it.
    Outcome render_plain(element e, const Column& column, std::string& error) {
        const TypeCategory category = column.info.category;
        switch (e.type()) {
            case element_type::NULL_VALUE:
                return Outcome::missing;
            case element_type::STRING: {
                std::string_view s(e);
                if (category == TypeCategory::json)
                    append_json_string(field, s);
                else if (category == TypeCategory::bytea)
                    append_hex_bytea(field, s);
                else
                    field.append(s);
                return Outcome::value;
            }
            case element_type::BOOL:
                field += bool(e) ? "true" : "false";
                return Outcome::value;
            case element_type::ARRAY:
                if (category == TypeCategory::array)
                    render_pg_array(simdjson::dom::array(e));
                else
                    field += simdjson::minify(e);
                return Outcome::value;
            case element_type::OBJECT:
                field += simdjson::minify(e);
                return Outcome::value;
            default: {
                std::string number;
                std::swap(number, field);
                append_number(e);
                std::swap(number, field);
                if (category == TypeCategory::timestamp) {
                    if (!append_epoch(field, number)) {
                        error = "number " + number + " is not a time in epoch seconds";
                        return Outcome::error;
                    }
                    return Outcome::value;
                }
                if (column.numbers != NumberTarget::digits &&
                    !number_fits(number, column.numbers, error))
                    return Outcome::error;
                field += number;
                return Outcome::value;
            }
        }
    }

    // A value whose schema names a logical type (schema wrapper only).
    Outcome render_logical(element e, LogicalType type, object field_schema, const Column& column,
                           std::string& error) {
        if (e.is_null())
            return Outcome::missing;
        std::int64_t n = 0;
        auto need_integer = [&] {
            if (int64_of(e, n))
                return true;
            error = "expected an integer for its logical type";
            return false;
        };
        switch (type) {
            case LogicalType::decimal:
            case LogicalType::variable_scale_decimal: {
                std::string_view b64;
                std::optional<int> scale;
                if (type == LogicalType::decimal) {
                    scale = scale_of(field_schema);
                    if (e.get_string().get(b64) != simdjson::SUCCESS)
                        return render_plain(e, column, error);  // decimal.handling.mode
                } else {
                    std::int64_t s;
                    if (e["scale"].get_int64().get(s) == simdjson::SUCCESS)
                        scale = static_cast<int>(s);
                    if (e["value"].get_string().get(b64) != simdjson::SUCCESS) {
                        error = "VariableScaleDecimal without a value";
                        return Outcome::error;
                    }
                }
                auto bytes = base64_decode(b64);
                if (!bytes || !scale) {
                    error = !bytes ? "decimal is not base64: " + quoted_value(b64)
                                   : std::string("decimal without a scale in its schema");
                    return Outcome::error;
                }
                field += decimal_from_twos_complement(*bytes, *scale);
                return Outcome::value;
            }
            case LogicalType::date:
                if (!need_integer())
                    return Outcome::error;
                field += date_from_days(n);
                return Outcome::value;
            case LogicalType::time_millis:
            case LogicalType::time_micros:
            case LogicalType::time_nanos: {
                if (!need_integer())
                    return Outcome::error;
                auto t = time_of_day(n, type == LogicalType::time_millis   ? TimeUnit::millis
                                        : type == LogicalType::time_micros ? TimeUnit::micros
                                                                           : TimeUnit::nanos);
                if (!t) {
                    error = "time of day " + std::to_string(n) + " is outside 00:00..24:00";
                    return Outcome::error;
                }
                field += *t;
                return Outcome::value;
            }
            case LogicalType::timestamp_millis:
            case LogicalType::timestamp_micros:
            case LogicalType::timestamp_nanos:
                if (!need_integer())
                    return Outcome::error;
                field += timestamp_from_epoch(
                    n, type == LogicalType::timestamp_millis   ? TimeUnit::millis
                       : type == LogicalType::timestamp_micros ? TimeUnit::micros
                                                               : TimeUnit::nanos);
                return Outcome::value;
            case LogicalType::micro_duration:
                if (!need_integer())
                    return Outcome::error;
                field += std::to_string(n) + " microseconds";
                return Outcome::value;
            case LogicalType::json: {
                std::string_view s;
                if (e.get_string().get(s) != simdjson::SUCCESS)
                    return render_plain(e, column, error);
                field.append(s);  // the JSON text itself, for json and text columns alike
                return Outcome::value;
            }
            case LogicalType::bytes: {
                std::string_view s;
                if (e.get_string().get(s) != simdjson::SUCCESS)
                    return render_plain(e, column, error);
                auto bytes = base64_decode(s);
                if (!bytes) {
                    error = "bytes are not base64: " + quoted_value(s);
                    return Outcome::error;
                }
                if (column.info.category == TypeCategory::bytea)
                    append_hex_bytea(field, *bytes);
                else
                    field += *bytes;
                return Outcome::value;
            }
            case LogicalType::none:
                break;
        }
        return render_plain(e, column, error);
    }

    // The key field `name` from the message key (message_id: the Debezium key as JSON, with or
    // without its schema wrapper).
    std::optional<element> key_field(const Delivery& d, const std::string& name) {
        if (d.message_id.empty())
            return std::nullopt;
        element root;
        if (key_parser.parse(d.message_id.data(), d.message_id.size()).get(root) !=
            simdjson::SUCCESS)
            return std::nullopt;
        element payload;
        if (root["payload"].get(payload) == simdjson::SUCCESS && root["schema"].error() == 0)
            root = payload;
        element value;
        if (root[name].get(value) != simdjson::SUCCESS || value.is_null())
            return std::nullopt;
        return value;
    }
};

DebeziumMapper::DebeziumMapper(const TargetConfig& target, const TableSchema& table,
                               const PipelineConfig& pipeline)
    : impl_(std::make_unique<Impl>()) {
    impl_->dedupe = pipeline.dedupe;
    impl_->count_unmapped = target.columns_by_name;
    for (const auto& mapping : target.columns) {
        const ColumnInfo* info = table.find(mapping.column);
        if (info == nullptr)
            throw std::invalid_argument("column '" + mapping.column + "' does not exist in " +
                                        table.schema + "." + table.name);
        Impl::Column column{mapping, *info, number_target_of(*info), std::nullopt, false, false};
        if (mapping.source.kind == ColumnSource::Kind::json_pointer)
            column.field = single_field(mapping.source.argument);
        column.is_key =
            std::find(target.key.begin(), target.key.end(), mapping.column) != target.key.end();
        column.is_version = mapping.column == target.version;
        impl_->columns.push_back(std::move(column));
    }
    impl_->absent = AbsentFields(target.columns);
}

DebeziumMapper::~DebeziumMapper() = default;
DebeziumMapper::DebeziumMapper(DebeziumMapper&&) noexcept = default;
DebeziumMapper& DebeziumMapper::operator=(DebeziumMapper&&) noexcept = default;

std::uint64_t DebeziumMapper::take_unmapped() {
    return std::exchange(impl_->unmapped, 0);
}

const std::string& DebeziumMapper::last_version() const {
    return impl_->event.version;
}

const std::string& DebeziumMapper::first_unmapped() const {
    return impl_->first_unmapped;
}

DebeziumMapper::Result DebeziumMapper::append_row(const Delivery& d, std::string_view body,
                                                  std::string& out, std::string& reason) {
    Impl& m = *impl_;
    if (is_tombstone_body(body)) {
        m.event.version.clear();
        reason = "tombstone";
        return Result::skip;
    }
    m.padded.assign(body.data(), body.size());
    m.padded.resize(body.size() + simdjson::SIMDJSON_PADDING);
    element root;
    auto code = m.parser.parse(m.padded.data(), body.size(), false).get(root);
    if (code == simdjson::NUMBER_ERROR) {
        reason =
            "a number in the change event is beyond 64 bits or a double's range; send "
            "decimals with decimal.handling.mode=precise or string";
        return Result::poison;
    }
    if (code != simdjson::SUCCESS) {
        reason = invalid_json_reason(body, simdjson::error_message(code));
        return Result::poison;
    }
    if (auto error = read_change_event(root, m.event)) {
        reason = *error;
        return Result::poison;
    }
    ChangeEvent& ev = m.event;
    if (ev.kind == ChangeEvent::Kind::skip) {
        reason = ev.skip_what;
        return Result::skip;
    }
    const bool is_delete = ev.op == 'd';
    m.field_schemas.clear();
    if (ev.has_image_schema) {
        simdjson::dom::array fields;
        if (ev.image_schema["fields"].get(fields) == simdjson::SUCCESS)
            for (element f : fields) {
                object fo;
                std::string_view name;
                if (f.get_object().get(fo) == simdjson::SUCCESS &&
                    fo["field"].get(name) == simdjson::SUCCESS)
                    m.field_schemas.emplace_back(name, fo);
            }
    }
    if (m.count_unmapped && ev.has_image) {
        for (auto [key, value] : ev.image) {
            bool taken = false;
            for (const auto& c : m.columns)
                taken = taken || (c.field && *c.field == key);
            if (!taken) {
                ++m.unmapped;
                if (m.first_unmapped.empty())
                    m.first_unmapped = std::string(key);
            }
        }
    }
    const std::size_t row_start = out.size();
    m.absent.start_row();
    std::size_t hint = 0;
    for (std::size_t i = 0; i < m.columns.size(); ++i) {
        const Impl::Column& column = m.columns[i];
        if (i > 0)
            out += '\t';
        if (column.is_version) {
            out += ev.version;
            continue;
        }
        m.field.clear();
        Impl::Outcome outcome = Impl::Outcome::missing;
        bool absent = false;  // not in the image (a null field is there)
        std::string error;
        const auto kind = column.mapping.source.kind;
        if (is_delete && !column.is_key) {
            out += kNull;  // a delete needs only its key and version
            continue;
        }
        if (kind == ColumnSource::Kind::json_pointer) {
            element value;
            bool found = false;
            if (ev.has_image) {
                found = column.field
                            ? ev.image[*column.field].get(value) == simdjson::SUCCESS
                            : ev.image.at_pointer(column.mapping.source.argument).get(value) ==
                                  simdjson::SUCCESS;
            }
            absent = !found && ev.has_image;
            if ((!found || value.is_null()) && column.is_key && column.field) {
                if (auto from_key = m.key_field(d, *column.field)) {
                    value = *from_key;
                    found = true;
                }
            }
            if (found) {
                std::optional<object> schema;
                if (column.field && !m.field_schemas.empty())
                    schema = m.schema_of(*column.field, hint);
                std::string_view type_name, logical_name;
                if (schema) {
                    // Absent keys leave the views empty: no logical type.
                    if ((*schema)["type"].get(type_name) != simdjson::SUCCESS)
                        type_name = {};
                    if ((*schema)["name"].get(logical_name) != simdjson::SUCCESS)
                        logical_name = {};
                }
                LogicalType type = logical_type_of(logical_name, type_name);
                outcome = type == LogicalType::none
                              ? m.render_plain(value, column, error)
                              : m.render_logical(value, type, *schema, column, error);
            }
        } else if (kind == ColumnSource::Kind::message_id && !d.message_id.empty()) {
            m.field.append(d.message_id);
            outcome = Impl::Outcome::value;
        } else if (kind == ColumnSource::Kind::routing_key) {
            m.field.append(d.routing_key);
            outcome = Impl::Outcome::value;
        } else if (kind == ColumnSource::Kind::exchange) {
            m.field.append(d.exchange);
            outcome = Impl::Outcome::value;
        } else if (kind == ColumnSource::Kind::header) {
            if (auto h = d.header(column.mapping.source.argument)) {
                m.field += h->text;
                outcome = Impl::Outcome::value;
            }
        } else if (kind == ColumnSource::Kind::timestamp && d.timestamp) {
            if (append_epoch(m.field, std::to_string(*d.timestamp)))
                outcome = Impl::Outcome::value;
        }
        if (outcome == Impl::Outcome::error) {
            out.resize(row_start);
            reason = "column '" + column.mapping.column + "' from " + column.mapping.source_text +
                     ": " + error;
            return Result::poison;
        }
        if (outcome == Impl::Outcome::missing) {
            if (column.is_key) {
                out.resize(row_start);
                reason = std::string(is_delete ? "delete" : "change") + " without key column '" +
                         column.mapping.column + "' (not in " + (is_delete ? "before" : "after") +
                         " nor in the message key)";
                return Result::poison;
            }
            if (absent && m.absent.mark(i)) {
                out += kNull;  // the DEFAULT, by the row's last field
                continue;
            }
            if (column.mapping.default_value)
                append_copy_escaped(out, *column.mapping.default_value);
            else
                out += kNull;
            continue;
        }
        append_copy_escaped(out, m.field);
    }
    if (!m.dedupe.empty()) {
        std::string id;
        if (m.dedupe == "message_id") {
            id = std::string(d.message_id);
        } else {
            element e;
            std::string_view s;
            if (root.at_pointer(m.dedupe).get(e) == simdjson::SUCCESS) {
                if (e.get_string().get(s) == simdjson::SUCCESS)
                    id = std::string(s);
                else if (!e.is_null() && !e.is_object() && !e.is_array())
                    id = simdjson::minify(e);
            }
        }
        if (id.empty()) {
            out.resize(row_start);
            reason = "dedupe: " + m.dedupe + " is missing, so the message cannot be deduplicated";
            return Result::poison;
        }
        out += '\t';
        append_copy_escaped(out, id);
    }
    out += is_delete ? "\td" : "\tu";
    m.absent.append(out);
    return Result::row;
}

}  // namespace rmq2pg
