// The rows of one message in its route's tables; see aggregate_mapper.h and the design in
// aggregate.h. Each child element is mapped as a document of its own (its raw JSON text handed
// to the child's RowMapper), so a child's pointers are relative to its element and every
// conversion a top-level column knows applies to child columns too. The parent row has already
// validated the whole body (a parent with children always parses it), so the On-Demand walk
// over its arrays only meets valid JSON.
#include "aggregate_mapper.h"

#include <simdjson.h>

#include "columns_by_name.h"
#include "protobuf_decoder.h"

namespace rmq2pg {

using simdjson::ondemand::json_type;

namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

const char* type_name(json_type type) {
    switch (type) {
        case json_type::object:
            return "an object";
        case json_type::string:
            return "a string";
        case json_type::number:
            return "a number";
        case json_type::boolean:
            return "a boolean";
        default:
            return "not an array";
    }
}

}  // namespace

struct AggregateMapper::Impl {
    struct Child {
        std::string from;
        std::string table;  // schema.table, for reasons
        std::unique_ptr<AggregateMapper> mapper;
    };
    std::size_t table = 0;
    bool index_column = false;
    RowMapper row;
    std::vector<Child> children;
    simdjson::ondemand::parser parser;
    std::string padded;      // the body + padding, reused
    std::string parent_row;  // this message's row, read by the children's $parent.COLUMN
    std::string element;     // one element's JSON text
    // format: protobuf (a route's mapper only): the body becomes its JSON form in `json` first.
    std::unique_ptr<ProtobufDecoder> protobuf;
    std::string json;

    Impl(RowMapper mapper) : row(std::move(mapper)) {}
};

AggregateMapper::AggregateMapper(const PipelineConfig& pipeline,
                                 const std::vector<TableTarget>& tables, std::size_t table,
                                 const std::vector<const TableSchema*>& schemas) {
    TargetConfig resolved = resolve_target(pipeline, *tables.at(table).config, *schemas.at(table));
    const bool protobuf = pipeline.format == MessageFormat::protobuf && pipeline.protobuf.schema;
    // Columns by name: a column named as a field's lowerCamel JSON name reads that field; a
    // column no field has reads nothing (NULL or its DEFAULT), as with JSON.
    if (protobuf && resolved.columns_by_name)
        pipeline.protobuf.schema->apply_names(resolved, false);
    impl_ = std::make_unique<Impl>(RowMapper(resolved, *schemas.at(table), pipeline));
    if (protobuf)
        impl_->protobuf = std::make_unique<ProtobufDecoder>(pipeline.protobuf.schema);
    impl_->table = table;
    impl_->index_column = carries_message_index(tables[table]);
    add_children(tables, schemas, resolved);
}

AggregateMapper::AggregateMapper(const std::vector<TableTarget>& tables, std::size_t table,
                                 const std::vector<const TableSchema*>& schemas,
                                 const TargetConfig& parent) {
    const TargetConfig& self = *tables.at(table).config;
    // dedupe, like delete_when and the format, belongs to the message: its route's row.
    impl_ = std::make_unique<Impl>(RowMapper(self, *schemas.at(table), "", &parent));
    impl_->table = table;
    impl_->index_column = true;
    add_children(tables, schemas, self);
}

void AggregateMapper::add_children(const std::vector<TableTarget>& tables,
                                   const std::vector<const TableSchema*>& schemas,
                                   const TargetConfig& self) {
    for (std::size_t i = impl_->table + 1; i < tables.size(); ++i) {
        if (tables[i].parent != impl_->table)
            continue;
        Impl::Child child;
        child.from = tables[i].config->from;
        child.table = tables[i].config->qualified_table();
        child.mapper =
            std::unique_ptr<AggregateMapper>(new AggregateMapper(tables, i, schemas, self));
        impl_->children.push_back(std::move(child));
    }
}

bool AggregateMapper::skipped() const {
    return impl_->row.skipped();
}

const std::string& AggregateMapper::skip_reason() const {
    return impl_->row.skip_reason();
}

std::string AggregateMapper::last_version() const {
    return impl_->row.last_version();
}

std::uint64_t AggregateMapper::take_unmapped() {
    return impl_->row.take_unmapped();
}

std::string AggregateMapper::first_unmapped() const {
    return impl_->row.first_unmapped();
}

AggregateMapper::~AggregateMapper() = default;
AggregateMapper::AggregateMapper(AggregateMapper&&) noexcept = default;
AggregateMapper& AggregateMapper::operator=(AggregateMapper&&) noexcept = default;

std::optional<std::string> AggregateMapper::append(const Delivery& delivery, std::string_view body,
                                                   std::size_t message,
                                                   std::vector<std::string>& rows,
                                                   std::vector<std::size_t>& counts,
                                                   const RowContext* context) {
    Impl& m = *impl_;
    if (m.protobuf) {
        if (auto error = m.protobuf->to_json(body, m.json))
            return error;
        body = m.json;
    }
    std::string& out = rows[m.table];
    const std::size_t before = out.size();
    if (counts[m.table] > 0)
        out += '\n';
    const std::size_t start = out.size();
    if (auto error = m.row.append_row(delivery, body, out, context)) {
        out.resize(before);
        return error;
    }
    if (m.row.skipped()) {
        out.resize(before);
        return std::nullopt;
    }
    if (m.index_column) {
        out += '\t';
        out += std::to_string(message);
    }
    counts[m.table]++;
    if (m.children.empty())
        return std::nullopt;

    m.parent_row.assign(out, start, std::string::npos);
    if (body.substr(0, kUtf8Bom.size()) == kUtf8Bom)
        body.remove_prefix(kUtf8Bom.size());
    m.padded.assign(body.data(), body.size());
    m.padded.resize(body.size() + simdjson::SIMDJSON_PADDING);
    for (auto& child : m.children) {
        simdjson::ondemand::document document;
        if (m.parser.iterate(m.padded.data(), body.size(), m.padded.size()).get(document) !=
            simdjson::SUCCESS)
            return "child " + child.table + ": the body is not valid JSON";
        simdjson::ondemand::value value;
        auto code = document.at_pointer(child.from).get(value);
        // Missing (or under a scalar): no children, as an empty array.
        if (code == simdjson::NO_SUCH_FIELD || code == simdjson::INDEX_OUT_OF_BOUNDS ||
            code == simdjson::INCORRECT_TYPE || code == simdjson::INVALID_JSON_POINTER)
            continue;
        json_type type;
        if (code != simdjson::SUCCESS || value.type().get(type) != simdjson::SUCCESS)
            return "child " + child.table + " from " + child.from + ": not valid JSON";
        if (type == json_type::null)
            continue;
        if (type != json_type::array)
            return "child " + child.table + " from " + child.from + ": " + type_name(type) +
                   ", not an array";
        simdjson::ondemand::array array;
        if (value.get_array().get(array) != simdjson::SUCCESS)
            return "child " + child.table + " from " + child.from + ": not valid JSON";
        std::size_t index = 0;
        for (auto element_result : array) {
            simdjson::ondemand::value element;
            json_type element_type;
            if (element_result.get(element) != simdjson::SUCCESS ||
                element.type().get(element_type) != simdjson::SUCCESS)
                return "child " + child.table + " from " + child.from + ": not valid JSON";
            std::string_view text;
            simdjson::error_code error = simdjson::SUCCESS;
            if (element_type == json_type::object) {
                simdjson::ondemand::object object;
                error = element.get_object().get(object);
                if (!error)
                    error = object.raw_json().get(text);
            } else if (element_type == json_type::array) {
                simdjson::ondemand::array inner;
                error = element.get_array().get(inner);
                if (!error)
                    error = inner.raw_json().get(text);
            } else {
                text = element.raw_json_token();
            }
            if (error)
                return "child " + child.table + " from " + child.from + ": not valid JSON";
            m.element.assign(text.data(), text.size());
            RowContext child_context{index, m.parent_row};
            if (auto reason = child.mapper->append(delivery, m.element, message, rows, counts,
                                                   &child_context))
                return "child " + child.table + " " + child.from + "/" + std::to_string(index) +
                       ": " + *reason;
            ++index;
        }
    }
    return std::nullopt;
}

}  // namespace rmq2pg
