// RFC 6901 JSON Pointer syntax checks (pure). Evaluation happens in row_mapper with simdjson,
// which resolves the same syntax; validating here lets --check-config reject bad pointers early.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace rmq2pg {

// nullopt when `pointer` is a valid JSON Pointer, else what is wrong with it.
std::optional<std::string> validate_json_pointer(const std::string& pointer);

// The unescaped reference tokens ("/a~1b/c~0" → {"a/b", "c~"}); assumes a valid pointer.
std::vector<std::string> json_pointer_tokens(const std::string& pointer);

// One reference token escaped for a pointer ("a/b~" → "a~1b~0"), without the leading '/'.
std::string escape_json_pointer_token(const std::string& token);

}  // namespace rmq2pg
