// RFC 6901 JSON Pointer syntax; see json_pointer.h.
#include "json_pointer.h"

namespace rmq2pg {

std::optional<std::string> validate_json_pointer(const std::string& pointer) {
    if (pointer.empty())
        return std::nullopt;  // the whole document
    if (pointer[0] != '/')
        return "must be empty or start with '/'";
    for (std::size_t i = 0; i < pointer.size(); ++i) {
        if (pointer[i] != '~')
            continue;
        if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))
            return "'~' must be followed by 0 or 1 (write ~0 for '~' and ~1 for '/')";
    }
    return std::nullopt;
}

std::vector<std::string> json_pointer_tokens(const std::string& pointer) {
    std::vector<std::string> tokens;
    if (pointer.empty())
        return tokens;
    std::string current;
    for (std::size_t i = 1; i <= pointer.size(); ++i) {
        if (i == pointer.size() || pointer[i] == '/') {
            tokens.push_back(current);
            current.clear();
        } else if (pointer[i] == '~' && i + 1 < pointer.size()) {
            current += pointer[i + 1] == '1' ? '/' : '~';
            ++i;
        } else {
            current += pointer[i];
        }
    }
    return tokens;
}

std::string escape_json_pointer_token(const std::string& token) {
    std::string out;
    for (char c : token) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

}  // namespace rmq2pg
