// Top-level JSON fields (json_fields.h), read with simdjson's DOM parser: suggest looks at a few
// messages, so speed does not matter and the DOM keeps this short.
#include "json_fields.h"

#include <simdjson.h>

namespace rmq2pg {

std::optional<std::vector<JsonField>> top_level_fields(std::string_view body) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(body);
    simdjson::dom::element root;
    if (parser.parse(padded).get(root) != simdjson::SUCCESS)
        return std::nullopt;
    simdjson::dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS)
        return std::nullopt;
    std::vector<JsonField> fields;
    for (auto field : object) {
        std::string kind;
        switch (field.value.type()) {
            case simdjson::dom::element_type::STRING:
                kind = "string";
                break;
            case simdjson::dom::element_type::BOOL:
                kind = "boolean";
                break;
            case simdjson::dom::element_type::NULL_VALUE:
                kind = "null";
                break;
            case simdjson::dom::element_type::OBJECT:
                kind = "object";
                break;
            case simdjson::dom::element_type::ARRAY:
                kind = "array";
                break;
            default:
                kind = "number";
        }
        fields.push_back(JsonField{std::string(field.key), kind});
    }
    return fields;
}

}  // namespace rmq2pg
