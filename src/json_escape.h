// JSON string quoting for the text we emit ourselves (JSON log lines, /api/status, health
// bodies): one escaper so every output agrees on control characters and invalid UTF-8 bytes.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace rmq2pg {

// Appends `text` as a quoted JSON string. Bytes are copied as they are (error texts from the
// servers are UTF-8); quotes, backslashes and control characters are escaped.
inline void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

inline std::string json_string(std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
}

}  // namespace rmq2pg
