// The top-level fields of a JSON object message, for `rmq2pg suggest`: each field's name and
// the JSON kind of its value. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rmq2pg {

struct JsonField {
    std::string name;
    std::string kind;  // string, number, boolean, null, object, array
};

// nullopt when `body` is not a JSON object.
std::optional<std::vector<JsonField>> top_level_fields(std::string_view body);

}  // namespace rmq2pg
