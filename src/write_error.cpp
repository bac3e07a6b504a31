// WriteError's kinds and the SQLSTATE classes that map to them.
#include "write_error.h"

namespace rmq2pg {

const char* to_string(WriteError::Kind kind) {
    switch (kind) {
        case WriteError::Kind::connection:
            return "connection lost";
        case WriteError::Kind::transient:
            return "transient";
        case WriteError::Kind::outcome_unknown:
            return "commit outcome unknown";
        case WriteError::Kind::bad_data:
            return "bad data";
        case WriteError::Kind::schema:
            return "schema";
        case WriteError::Kind::fenced:
            return "lease lost";
    }
    return "?";
}

// SQLSTATE class -> next action. https://www.postgresql.org/docs/15/errcodes-appendix.html
WriteError::Kind classify_sqlstate(const std::string& state) {
    // A cancelled statement (our statement_timeout, or pg_cancel_backend) leaves the session
    // healthy: the batch is retried as it is, never blamed on a row.
    if (state == "57014")
        return WriteError::Kind::transient;
    std::string cls = state.substr(0, 2);
    if (cls == "08" || cls == "57")
        return WriteError::Kind::connection;  // connection, shutdown
    if (cls == "40" || cls == "53" || cls == "55" || cls == "58" || cls == "XX")
        return WriteError::Kind::transient;  // rollback, resources, lock, system, internal
    if (cls == "22" || cls == "23")
        return WriteError::Kind::bad_data;  // data, constraint
    if (state == "54000")
        return WriteError::Kind::bad_data;  // e.g. a value too large for a row
    return WriteError::Kind::schema;        // 42 (missing table/column, permission), 28, 3F, 0A...
}

std::string one_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    for (auto& c : text)
        if (c == '\n')
            c = ' ';
    return text;
}

}  // namespace rmq2pg
