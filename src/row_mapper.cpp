// Delivery → COPY text row. Design: the body is parsed at most once per message with simdjson's
// On-Demand API into a buffer reused across messages (no per-message allocation), each JSON
// Pointer is resolved against that parse, and values are written straight into the batch's COPY
// buffer in the text form PostgreSQL parses for the column's type. Numbers are copied as their
// original JSON tokens, so numeric columns get exactly the digits that were sent; integer and
// float columns refuse a number their type cannot hold (see NumberTarget). How each value's
// text becomes its column's type is column_conversion.cpp's.
#include "row_mapper.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "column_conversion.h"
#include "column_defaults.h"
#include "debezium_mapper.h"
#include "json_escape.h"
#include "mapping_reasons.h"

namespace rmq2pg {

using simdjson::ondemand::json_type;

namespace {

constexpr std::string_view kNull = "\\N";

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
    std::size_t i = 0, n = s.size();
    auto digits = [&] {
        std::size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            ++i;
        return i > start;
    };
    if (i < n && s[i] == '-')
        ++i;
    if (i < n && s[i] == '0') {
        ++i;
    } else if (!digits()) {
        return false;
    }
    if (i < n && s[i] == '.') {
        ++i;
        if (!digits())
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            ++i;
        if (!digits())
            return false;
    }
    return i == n;
}

// simdjson's DOM parser refuses numbers it cannot hold (integers beyond 64 bits, 1e400), yet
// they are valid JSON and PostgreSQL's numeric takes them. This copy of the body has each number
// token checked against the JSON grammar and replaced by a same-length "0   ", so the DOM parser
// can validate everything else.
bool neutralize_numbers(std::string_view body, std::string& copy) {
    copy.assign(body.data(), body.size());
    bool in_string = false;
    for (std::size_t i = 0; i < copy.size(); ++i) {
        char c = copy[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            std::size_t end = i;
            while (end < copy.size() && std::strchr("+-.eE0123456789", copy[end]) != nullptr &&
                   copy[end] != '\0')
                ++end;
            if (!is_json_number(std::string_view(copy).substr(i, end - i)))
                return false;
            copy[i] = '0';
            std::fill(copy.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                      copy.begin() + static_cast<std::ptrdiff_t>(end), ' ');
            i = end - 1;
        }
    }
    return true;
}

// RFC 8259 forbids senders a byte order mark but lets parsers ignore one; producers on Windows
// send it. It is not part of the JSON text.
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::string_view without_bom(std::string_view body) {
    if (body.substr(0, kUtf8Bom.size()) == kUtf8Bom)
        body.remove_prefix(kUtf8Bom.size());
    return body;
}

const char* json_kind_name(simdjson::dom::element_type type) {
    switch (type) {
        case simdjson::dom::element_type::STRING:
            return "a string";
        case simdjson::dom::element_type::BOOL:
            return "a boolean";
        case simdjson::dom::element_type::NULL_VALUE:
            return "null";
        default:
            return "a number";
    }
}

}  // namespace

struct RowMapper::Impl {
    struct Column {
        ColumnMapping mapping;
        TypeCategory category;
        NumberTarget numbers;
        std::size_t parent_field = 0;  // parent_column: the field's position in the parent row
    };
    std::vector<Column> columns;
    AbsentFields absent;  // columns by name: which fields were absent (column_defaults.h)
    bool parses_json = false;
    // Some pointer reaches into the document, so a body that is a lone scalar has nothing
    // for it to find: poison rather than a row of NULLs.
    bool needs_container = false;
    std::string dedupe;
    std::optional<DeleteRule> delete_when;
    std::vector<std::string> key;
    std::string version;
    std::unique_ptr<DebeziumMapper> debezium;  // format: debezium maps through it
    bool skipped = false;
    std::string skip_reason;
    // Columns by name: the field names that columns take, to count the others.
    std::vector<std::string> by_name_fields;
    std::uint64_t unmapped = 0;
    std::string first_unmapped;

    // A scalar at `pointer` as text (strings unescaped, other scalars as their JSON token).
    std::optional<std::string> scalar_at(simdjson::ondemand::document& document,
                                         const std::string& pointer) {
        simdjson::ondemand::value value;
        if (document.at_pointer(pointer).get(value) != simdjson::SUCCESS)
            return std::nullopt;
        json_type type;
        if (value.type().get(type) != simdjson::SUCCESS || type == json_type::null ||
            type == json_type::object || type == json_type::array)
            return std::nullopt;
        if (type == json_type::string) {
            std::string_view s;
            if (value.get_string().get(s) != simdjson::SUCCESS)
                return std::nullopt;
            return std::string(s);
        }
        return std::string(trim(value.raw_json_token()));
    }
    simdjson::dom::parser validator;
    simdjson::ondemand::parser parser;
    std::string padded;          // body + SIMDJSON_PADDING, reused across messages
    std::string neutralized;     // body with numbers blanked, for validating huge numbers
    std::string field;           // scratch for values built before escaping
    std::string element_string;  // a child's element that is a JSON string, unescaped

    enum class Outcome { value, missing, error };

    // Appends a JSON value rendered for `column`'s type to `field`. Inlined into append_row: as
    // a call, once per pointer column of every message, it cost ~2% of the instructions per
    // message in scripts/profile.sh.
    [[gnu::always_inline]] Outcome render_json(simdjson::ondemand::value value,
                                               const Column& column, std::string& error) {
        const TypeCategory category = column.category;
        json_type type;
        if (value.type().get(type) != simdjson::SUCCESS) {
            error = "not valid JSON";
            return Outcome::error;
        }
        switch (type) {
            case json_type::null:
                return Outcome::missing;
            case json_type::string: {
                if (category == TypeCategory::json) {
                    field.append(trim(value.raw_json_token()));
                    return Outcome::value;
                }
                std::string_view s;
                if (value.get_string().get(s) != simdjson::SUCCESS)
                    break;
                if (category == TypeCategory::bytea && column.mapping.source.base64) {
                    if (!append_base64_bytea(field, s)) {
                        error = "value " + quoted_value(s) + " is not base64";
                        return Outcome::error;
                    }
                } else if (category == TypeCategory::bytea) {
                    append_hex_bytea(field, s);
                } else {
                    field.append(s);
                }
                return Outcome::value;
            }
            case json_type::number: {
                std::string_view raw = trim(value.raw_json_token());
                if (category == TypeCategory::timestamp) {
                    if (!append_epoch(field, raw)) {
                        error = "number " + quoted_value(raw) + " is not a time in epoch seconds";
                        return Outcome::error;
                    }
                } else {
                    if (column.numbers != NumberTarget::digits &&
                        !number_fits(raw, column.numbers, error))
                        return Outcome::error;
                    field.append(raw);
                }
                return Outcome::value;
            }
            case json_type::boolean: {
                bool b;
                if (value.get_bool().get(b) != simdjson::SUCCESS)
                    break;
                field += b ? "true" : "false";
                return Outcome::value;
            }
            case json_type::array: {
                simdjson::ondemand::array array;
                if (value.get_array().get(array) != simdjson::SUCCESS)
                    break;
                if (category == TypeCategory::array)
                    return render_pg_array(array, error);
                std::string_view raw;
                if (array.raw_json().get(raw) != simdjson::SUCCESS)
                    break;
                field.append(raw);
                return Outcome::value;
            }
            case json_type::object: {
                simdjson::ondemand::object object;
                std::string_view raw;
                if (value.get_object().get(object) != simdjson::SUCCESS ||
                    object.raw_json().get(raw) != simdjson::SUCCESS)
                    break;
                field.append(raw);
                return Outcome::value;
            }
        }
        error = "not valid JSON";
        return Outcome::error;
    }

    Outcome render_pg_array(simdjson::ondemand::array array, std::string& error) {
        field += '{';
        bool first = true;
        for (auto element_result : array) {
            simdjson::ondemand::value element;
            if (element_result.get(element) != simdjson::SUCCESS) {
                error = "not valid JSON in an array";
                return Outcome::error;
            }
            if (!first)
                field += ',';
            first = false;
            json_type type;
            if (element.type().get(type) != simdjson::SUCCESS) {
                error = "not valid JSON in an array";
                return Outcome::error;
            }
            if (type == json_type::null) {
                field += "NULL";
            } else if (type == json_type::array) {
                simdjson::ondemand::array inner;
                if (element.get_array().get(inner) != simdjson::SUCCESS)
                    return Outcome::error;
                if (render_pg_array(inner, error) == Outcome::error)
                    return Outcome::error;
            } else if (type == json_type::string) {
                std::string_view s;
                if (element.get_string().get(s) != simdjson::SUCCESS) {
                    error = "not valid JSON in an array";
                    return Outcome::error;
                }
                append_array_element_quoted(field, s);
            } else if (type == json_type::object) {
                simdjson::ondemand::object object;
                std::string_view raw;
                if (element.get_object().get(object) != simdjson::SUCCESS ||
                    object.raw_json().get(raw) != simdjson::SUCCESS) {
                    error = "not valid JSON in an array";
                    return Outcome::error;
                }
                append_array_element_quoted(field, raw);
            } else {
                field.append(trim(element.raw_json_token()));
            }
        }
        field += '}';
        return Outcome::value;
    }

    // A metadata or header value given as text of some kind. False when an AMQP timestamp is
    // not a time a timestamp column can take (it would otherwise become an empty field).
    bool render_text(std::string_view text, HeaderValue::Kind kind, TypeCategory category) {
        if (category == TypeCategory::json) {
            if (kind == HeaderValue::Kind::text)
                append_json_string(field, text);
            else
                field.append(text);
        } else if (category == TypeCategory::timestamp && kind == HeaderValue::Kind::timestamp) {
            return append_epoch(field, text);
        } else if (category == TypeCategory::bytea) {
            append_hex_bytea(field, text);
        } else {
            field.append(text);
        }
        return true;
    }
};

RowMapper::RowMapper(const TargetConfig& pipeline, const TableSchema& table,
                     const std::string& dedupe, const TargetConfig* parent)
    : impl_(std::make_unique<Impl>()) {
    impl_->dedupe = dedupe;
    impl_->delete_when = pipeline.delete_when;
    impl_->key = pipeline.key;
    impl_->version = pipeline.version;
    impl_->parses_json = (!dedupe.empty() && dedupe != "message_id") || pipeline.delete_when;
    impl_->needs_container = impl_->parses_json;  // a dedupe pointer or delete_when's field
    for (const auto& mapping : pipeline.columns) {
        const ColumnInfo* info = table.find(mapping.column);
        if (info == nullptr)
            throw std::invalid_argument("column '" + mapping.column + "' does not exist in " +
                                        table.schema + "." + table.name);
        std::size_t parent_field = 0;
        if (mapping.source.kind == ColumnSource::Kind::parent_column) {
            if (parent == nullptr)
                throw std::invalid_argument("column '" + mapping.column + "' reads " +
                                            mapping.source_text + " but has no parent");
            while (parent_field < parent->columns.size() &&
                   parent->columns[parent_field].column != mapping.source.argument)
                ++parent_field;
            if (parent_field == parent->columns.size())
                throw std::invalid_argument("column '" + mapping.column + "' reads " +
                                            mapping.source_text +
                                            ", which the parent does not map");
        }
        impl_->columns.push_back({mapping, info->category, number_target_of(*info), parent_field});
        const bool is_pointer = mapping.source.kind == ColumnSource::Kind::json_pointer;
        impl_->parses_json = impl_->parses_json || is_pointer;
        impl_->needs_container =
            impl_->needs_container || (is_pointer && !mapping.source.argument.empty());
    }
    impl_->absent = AbsentFields(pipeline.columns);
    // Children read arrays of the document: it must be valid JSON (validated here first).
    if (!pipeline.children.empty())
        impl_->parses_json = impl_->needs_container = true;
}

RowMapper::RowMapper(const TargetConfig& target, const TableSchema& table,
                     const PipelineConfig& pipeline)
    : RowMapper(target, table, pipeline.dedupe) {
    if (pipeline.format == MessageFormat::debezium) {
        impl_->debezium = std::make_unique<DebeziumMapper>(target, table, pipeline);
    } else if (target.columns_by_name) {
        for (const auto& c : target.columns)
            impl_->by_name_fields.push_back(c.column);
    }
}

bool RowMapper::skipped() const {
    return impl_->skipped;
}

const std::string& RowMapper::skip_reason() const {
    return impl_->skip_reason;
}

std::string RowMapper::last_version() const {
    return impl_->debezium ? impl_->debezium->last_version() : std::string();
}

std::uint64_t RowMapper::take_unmapped() {
    if (impl_->debezium)
        return impl_->debezium->take_unmapped();
    return std::exchange(impl_->unmapped, 0);
}

std::string RowMapper::first_unmapped() const {
    return impl_->debezium ? impl_->debezium->first_unmapped() : impl_->first_unmapped;
}

RowMapper::~RowMapper() = default;
RowMapper::RowMapper(RowMapper&&) noexcept = default;
RowMapper& RowMapper::operator=(RowMapper&&) noexcept = default;

namespace {

// Field `n` of a COPY row (tab-separated; tabs inside values are escaped as \t, so every raw
// tab separates), still COPY-escaped.
std::string_view copy_field(std::string_view row, std::size_t n) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t tab = row.find('\t', start);
        if (tab == std::string_view::npos)
            return kNull;
        start = tab + 1;
    }
    std::size_t end = row.find('\t', start);
    return row.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

}  // namespace

std::optional<std::string> RowMapper::append_row(const Delivery& d, std::string_view raw_body,
                                                 std::string& out, const RowContext* context) {
    Impl& m = *impl_;
    m.skipped = false;
    if (m.debezium) {
        std::string reason;
        switch (m.debezium->append_row(d, raw_body, out, reason)) {
            case DebeziumMapper::Result::row:
                return std::nullopt;
            case DebeziumMapper::Result::skip:
                m.skipped = true;
                m.skip_reason = reason;
                return std::nullopt;
            case DebeziumMapper::Result::poison:
                return reason;
        }
    }
    const std::size_t row_start = out.size();
    // The JSON text: the body without a leading byte order mark. Only bytea columns get the
    // body's bytes as they came.
    const std::string_view body = without_bom(raw_body);
    simdjson::ondemand::document document;
    bool element_is_string = false;
    if (m.parses_json) {
        // Full validation by the DOM parser first: On-Demand only checks what it reads, and
        // simdjson 3.0's On-Demand can crash on malformed input (e.g. '{"id":1,,}'). The DOM
        // parser is robust and dispatches to the CPU's SIMD kernels at run time.
        m.padded.assign(body.data(), body.size());
        m.padded.resize(body.size() + simdjson::SIMDJSON_PADDING);
        // Every number keeps its exact digits below (the raw token is copied), also those the
        // DOM parser cannot hold (see neutralize_numbers).
        simdjson::dom::element root;
        auto error = m.validator.parse(m.padded.data(), body.size(), false).get(root);
        if (error == simdjson::NUMBER_ERROR) {
            if (neutralize_numbers(body, m.neutralized)) {
                m.neutralized.resize(body.size() + simdjson::SIMDJSON_PADDING);
                error = m.validator.parse(m.neutralized.data(), body.size(), false).get(root);
            }
        }
        if (error != simdjson::SUCCESS)
            return invalid_json_reason(body, simdjson::error_message(error));
        // A child's element that is a string ("serials": ["s1", "s2"]): its pointer "" reads the
        // string, as a pointer to a string field does, not its JSON text.
        element_is_string = context != nullptr && root.is_string();
        if (element_is_string) {
            std::string_view text;
            if (root.get_string().get(text) == simdjson::SUCCESS)
                m.element_string.assign(text.data(), text.size());
        }
        if (m.needs_container && !element_is_string && !root.is_object() && !root.is_array())
            return std::string("body is ") + json_kind_name(root.type()) +
                   ", not a JSON object or array: the columns' JSON Pointers find nothing in it";
        if (!m.by_name_fields.empty() && root.is_object()) {
            for (auto [key, value] : simdjson::dom::object(root)) {
                if (std::find(m.by_name_fields.begin(), m.by_name_fields.end(), key) ==
                    m.by_name_fields.end()) {
                    ++m.unmapped;
                    if (m.first_unmapped.empty())
                        m.first_unmapped = std::string(key);
                }
            }
        }
        error = m.parser.iterate(m.padded.data(), body.size(), m.padded.size()).get(document);
        if (error != simdjson::SUCCESS)
            return invalid_json_reason(body, simdjson::error_message(error));
    }
    // A delete needs only its key (and version): other columns may be absent from it.
    bool is_delete = false;
    if (m.delete_when) {
        auto op = m.scalar_at(document, m.delete_when->field);
        is_delete = op && *op == m.delete_when->equals;
    }
    using Kind = ColumnSource::Kind;
    m.absent.start_row();
    for (std::size_t i = 0; i < m.columns.size(); ++i) {
        const Impl::Column& column = m.columns[i];
        const ColumnMapping& mapping = column.mapping;
        if (i > 0)
            out += '\t';
        m.field.clear();
        Impl::Outcome outcome = Impl::Outcome::value;
        bool absent = false;  // no such field (not a null one)
        std::string error;
        switch (mapping.source.kind) {
            case Kind::json_pointer: {
                if (mapping.source.argument.empty() && element_is_string) {
                    if (column.category == TypeCategory::bytea && mapping.source.base64) {
                        if (!append_base64_bytea(m.field, m.element_string)) {
                            outcome = Impl::Outcome::error;
                            error = "value " + quoted_value(m.element_string) + " is not base64";
                        }
                        break;
                    }
                    m.render_text(m.element_string, HeaderValue::Kind::text, column.category);
                    break;
                }
                if (mapping.source.argument.empty()) {  // "" = the whole document
                    m.render_text(column.category == TypeCategory::bytea ? raw_body : body,
                                  HeaderValue::Kind::json, column.category);
                    break;
                }
                simdjson::ondemand::value value;
                auto code = document.at_pointer(mapping.source.argument).get(value);
                if (code == simdjson::NO_SUCH_FIELD || code == simdjson::INDEX_OUT_OF_BOUNDS) {
                    outcome = Impl::Outcome::missing;
                    absent = true;
                } else if (code == simdjson::INCORRECT_TYPE ||
                           code == simdjson::INVALID_JSON_POINTER) {
                    // e.g. /a/b where /a is a number: the field cannot exist. (The pointer's
                    // own syntax was validated with the config.)
                    outcome = Impl::Outcome::missing;
                    absent = true;
                } else if (code != simdjson::SUCCESS) {
                    outcome = Impl::Outcome::error;
                    error = std::string("body is not valid JSON: ") + simdjson::error_message(code);
                } else {
                    outcome = m.render_json(value, column, error);
                }
                break;
            }
            case Kind::body:
                m.render_text(column.category == TypeCategory::bytea ? raw_body : body,
                              HeaderValue::Kind::json, column.category);
                break;
            case Kind::element_index:
                m.field = std::to_string(context != nullptr ? context->index : 0);
                break;
            case Kind::parent_column: {
                // Already COPY text of the parent's row: copied as it is.
                std::string_view value = context != nullptr
                                             ? copy_field(context->parent_row, column.parent_field)
                                             : kNull;
                if (value == kNull) {
                    outcome = Impl::Outcome::missing;
                    break;
                }
                out.append(value);
                continue;
            }
            case Kind::routing_key:
                m.render_text(d.routing_key, HeaderValue::Kind::text, column.category);
                break;
            case Kind::exchange:
                m.render_text(d.exchange, HeaderValue::Kind::text, column.category);
                break;
            case Kind::message_id:
                if (d.message_id.empty())
                    outcome = Impl::Outcome::missing;
                else
                    m.render_text(d.message_id, HeaderValue::Kind::text, column.category);
                break;
            case Kind::content_type:
                if (d.content_type.empty())
                    outcome = Impl::Outcome::missing;
                else
                    m.render_text(d.content_type, HeaderValue::Kind::text, column.category);
                break;
            case Kind::timestamp:
                if (!d.timestamp) {
                    outcome = Impl::Outcome::missing;
                } else if (std::string epoch = std::to_string(*d.timestamp);
                           !m.render_text(epoch, HeaderValue::Kind::timestamp, column.category)) {
                    outcome = Impl::Outcome::error;
                    error = "timestamp " + epoch + " is not a time in epoch seconds";
                }
                break;
            case Kind::stream_offset:
                if (!d.stream_offset) {
                    outcome = Impl::Outcome::missing;
                } else {
                    std::string offset = std::to_string(*d.stream_offset);
                    m.render_text(offset, HeaderValue::Kind::number, column.category);
                }
                break;
            case Kind::header: {
                auto header = d.header(mapping.source.argument);
                if (!header) {
                    outcome = Impl::Outcome::missing;
                } else if (!m.render_text(header->text, header->kind, column.category)) {
                    outcome = Impl::Outcome::error;
                    error = "timestamp " + quoted_value(header->text) +
                            " is not a time in epoch seconds";
                }
                break;
            }
        }
        if (outcome == Impl::Outcome::error) {
            out.resize(row_start);
            return "column '" + mapping.column + "' from " + mapping.source_text + ": " + error;
        }
        if (outcome == Impl::Outcome::missing) {
            if (absent && m.absent.mark(i)) {
                out += kNull;  // the DEFAULT, by the row's last field
                continue;
            }
            if (mapping.default_value) {
                append_copy_escaped(out, *mapping.default_value);
            } else if (mapping.required &&
                       (!is_delete || mapping.column == m.version ||
                        std::find(m.key.begin(), m.key.end(), mapping.column) != m.key.end())) {
                out.resize(row_start);
                return "column '" + mapping.column + "' is required but " + mapping.source_text +
                       " is missing or null";
            } else {
                out += kNull;
            }
            continue;
        }
        append_copy_escaped(out, m.field);
    }
    if (!m.dedupe.empty()) {
        std::optional<std::string> id;
        if (m.dedupe == "message_id") {
            if (!d.message_id.empty())
                id = std::string(d.message_id);
        } else {
            document.rewind();
            id = m.scalar_at(document, m.dedupe);
        }
        if (!id || id->empty()) {
            out.resize(row_start);
            return "dedupe: " + m.dedupe + " is missing, so the message cannot be deduplicated";
        }
        out += '\t';
        append_copy_escaped(out, *id);
    }
    if (m.delete_when)
        out += is_delete ? "\td" : "\tu";
    m.absent.append(out);
    return std::nullopt;
}

}  // namespace rmq2pg
