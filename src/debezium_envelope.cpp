// Reading Debezium change events; see debezium_envelope.h. Design: the version must compare
// correctly in SQL (the upsert's guard and the tombstones compare it there), across every event
// of one table, so each connector's composite position becomes one non-negative decimal
// integer whose parts are zero-padded to fixed widths wider than the part can be: numeric order
// is then the lexicographic order of the parts, exactly, with no precision limit (PostgreSQL's
// numeric holds 131072 digits).
#include "debezium_envelope.h"

#include <cstdint>

namespace rmq2pg {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// A non-negative integer field as decimal digits; nullopt when absent, null or not one.
std::optional<std::string> unsigned_digits(object o, std::string_view key) {
    element e;
    if (o[key].get(e) != simdjson::SUCCESS)
        return std::nullopt;
    std::uint64_t u;
    if (e.get_uint64().get(u) == simdjson::SUCCESS)
        return std::to_string(u);
    std::string_view s;  // some connectors send positions as strings
    if (e.get_string().get(s) == simdjson::SUCCESS && !s.empty() &&
        s.find_first_not_of("0123456789") == std::string_view::npos)
        return std::string(s);
    return std::nullopt;
}

std::string strip_zeros(std::string digits) {
    std::size_t first = digits.find_first_not_of('0');
    return first == std::string::npos ? "0" : digits.substr(first);
}

// `digits` left-padded with zeros to `width`; nullopt when it does not fit.
std::optional<std::string> padded(const std::string& digits, std::size_t width) {
    std::string d = strip_zeros(digits);
    if (d.size() > width)
        return std::nullopt;
    return std::string(width - d.size(), '0') + d;
}

bool is_null_or_absent(object o, std::string_view key) {
    element e;
    return o[key].get(e) != simdjson::SUCCESS || e.is_null();
}

}  // namespace

bool is_tombstone_body(std::string_view body) {
    body = trim(body);
    return body.empty() || body == "default" || body == "null";
}

std::optional<std::string> binlog_number(std::string_view file) {
    std::size_t dot = file.rfind('.');
    std::string_view n = dot == std::string_view::npos ? std::string_view() : file.substr(dot + 1);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    return strip_zeros(std::string(n));
}

std::optional<std::string> sqlserver_lsn_decimal(std::string_view lsn) {
    // Three hex parts of 8, 8 and 4 digits (VLF sequence, log block, slot): together 80 bits,
    // in order, which unsigned __int128 holds.
    unsigned __int128 value = 0;
    int parts = 0, digits = 0;
    for (char c : lsn) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else if (c == ':') {
            if (digits != (parts < 2 ? 8 : 4))
                return std::nullopt;
            ++parts;
            digits = 0;
            continue;
        } else
            return std::nullopt;
        value = value * 16 + static_cast<unsigned>(v);
        if (++digits > 8)
            return std::nullopt;
    }
    if (parts != 2 || digits != 4)
        return std::nullopt;
    std::string out;
    do {
        out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(value % 10)));
        value /= 10;
    } while (value != 0);
    return out;
}

std::optional<std::string> encode_position(object payload, std::string& error) {
    object source;
    bool has_source = payload["source"].get(source) == simdjson::SUCCESS;
    if (has_source) {
        if (auto lsn = unsigned_digits(source, "lsn"))  // PostgreSQL
            return strip_zeros(*lsn);
        std::string_view file;
        if (source["file"].get(file) == simdjson::SUCCESS) {  // MySQL, MariaDB
            auto number = binlog_number(file);
            auto pos = unsigned_digits(source, "pos");
            auto row = unsigned_digits(source, "row");
            // 20 digits hold any 64-bit number.
            auto pos20 = pos ? padded(*pos, 20) : std::nullopt;
            auto row20 = padded(row ? *row : "0", 20);
            if (!number || !pos20 || !row20) {
                error = "source.file/pos/row do not give a binlog position (file " +
                        std::string(file) + ")";
                return std::nullopt;
            }
            return strip_zeros(*number + *pos20 + *row20);
        }
        std::string_view commit;
        if (source["commit_lsn"].get(commit) == simdjson::SUCCESS) {  // SQL Server
            std::string_view change;
            auto commit_n = sqlserver_lsn_decimal(commit);
            std::optional<std::string> change_n = std::string("0");
            if (source["change_lsn"].get(change) == simdjson::SUCCESS)
                change_n = sqlserver_lsn_decimal(change);
            auto serial = unsigned_digits(source, "event_serial_no");
            // 2^80 has 25 digits.
            auto change25 = change_n ? padded(*change_n, 25) : std::nullopt;
            auto serial20 = padded(serial ? *serial : "0", 20);
            if (!commit_n || !change25 || !serial20) {
                error = "source.commit_lsn/change_lsn/event_serial_no are not SQL Server LSNs";
                return std::nullopt;
            }
            return strip_zeros(*commit_n + *change25 + *serial20);
        }
    }
    if (auto ts = unsigned_digits(payload, "ts_ms"))
        return strip_zeros(*ts);
    if (has_source)
        if (auto ts = unsigned_digits(source, "ts_ms"))
            return strip_zeros(*ts);
    error =
        "no position to order the change by (source.lsn, source.file+pos, "
        "source.commit_lsn, or ts_ms)";
    return std::nullopt;
}

std::optional<std::string> read_change_event(element root, ChangeEvent& event) {
    event = ChangeEvent{};
    if (root.is_null()) {
        event.kind = ChangeEvent::Kind::skip;
        event.skip_what = "tombstone";
        return std::nullopt;
    }
    object top;
    if (root.get_object().get(top) != simdjson::SUCCESS)
        return std::string("not a Debezium change event: the body is not a JSON object");
    // The wrapper: {"schema": {...}, "payload": ...}. A bare envelope has neither key at the top.
    // The JSON converter writes "schema": null for a value without a schema (a tombstone).
    object payload = top;
    object schema;
    element payload_element, schema_element;
    if (top["payload"].get(payload_element) == simdjson::SUCCESS &&
        top["schema"].get(schema_element) == simdjson::SUCCESS) {
        event.wrapped = true;
        if (payload_element.is_null()) {
            event.kind = ChangeEvent::Kind::skip;
            event.skip_what = "tombstone";
            return std::nullopt;
        }
        if (payload_element.get_object().get(payload) != simdjson::SUCCESS)
            return std::string("not a Debezium change event: payload is not a JSON object");
    }
    std::string_view op;
    element op_element;
    if (payload["op"].get(op_element) != simdjson::SUCCESS || op_element.is_null())
        return std::string("not a Debezium change event: no op field");
    if (op_element.get_string().get(op) != simdjson::SUCCESS || op.size() != 1 ||
        std::string_view("crudt").find(op[0]) == std::string_view::npos)
        return "not a Debezium change event: unknown op " +
               std::string(op_element.is_string() ? op : "(not a string)") +
               " (expected c, r, u, d or t)";
    event.op = op[0];
    if (event.op == 't') {
        event.kind = ChangeEvent::Kind::skip;
        event.skip_what = "truncate";
        return std::nullopt;
    }
    const char* image_name = event.op == 'd' ? "before" : "after";
    if (is_null_or_absent(payload, image_name) && event.op != 'd')
        return std::string("op ") + event.op + " without an after image";
    element image;
    if (payload[image_name].get(image) == simdjson::SUCCESS && !image.is_null()) {
        if (image.get_object().get(event.image) != simdjson::SUCCESS)
            return std::string(image_name) + " is not a JSON object";
        event.has_image = true;
    }
    // Otherwise a delete without `before` (REPLICA IDENTITY NOTHING): its key must come from
    // the message key (message_id); the mapper checks that it has one.
    std::string error;
    auto version = encode_position(payload, error);
    if (!version)
        return error;
    event.version = *version;
    if (event.wrapped && schema_element.get_object().get(schema) == simdjson::SUCCESS) {
        simdjson::dom::array fields;
        if (schema["fields"].get(fields) == simdjson::SUCCESS) {
            for (element f : fields) {
                std::string_view name;
                object field_schema;
                if (f.get_object().get(field_schema) == simdjson::SUCCESS &&
                    field_schema["field"].get(name) == simdjson::SUCCESS && name == image_name) {
                    event.image_schema = field_schema;
                    event.has_image_schema = true;
                }
            }
        }
    }
    return std::nullopt;
}

}  // namespace rmq2pg
