// libFuzzer target for RowMapper: the input is a message body (pointers of every shape into every
// column type, upsert/delete/dedupe fields), then a routing key, header and metadata value. It
// must never crash, a refused message must leave the buffer as it was, a row must be COPY text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "delivery.h"
#include "row_mapper.h"
#include "table_schema.h"

using rmq2pg::ColumnMapping;
using rmq2pg::ColumnSource;
using rmq2pg::Delivery;
using rmq2pg::HeaderValue;
using rmq2pg::PipelineConfig;
using rmq2pg::RowMapper;
using rmq2pg::TableSchema;
using rmq2pg::TypeCategory;
using Kind = ColumnSource::Kind;

namespace {

const TypeCategory kCategories[] = {TypeCategory::text,      TypeCategory::json,
                                    TypeCategory::timestamp, TypeCategory::boolean,
                                    TypeCategory::bytea,     TypeCategory::array};

const char* category_name(TypeCategory c) {
    switch (c) {
        case TypeCategory::text:
            return "text";
        case TypeCategory::json:
            return "json";
        case TypeCategory::timestamp:
            return "timestamp";
        case TypeCategory::boolean:
            return "boolean";
        case TypeCategory::bytea:
            return "bytea";
        case TypeCategory::array:
            return "array";
    }
    return "?";
}

// The pipeline and its table, built side by side so every mapped column exists with its type.
struct Spec {
    PipelineConfig pipeline;
    TableSchema table;
    std::vector<std::size_t> timestamp_fields;         // $timestamp into a timestamp column
    std::vector<std::size_t> timestamp_header_fields;  // $header.h into a timestamp column

    Spec() {
        pipeline.name = "fuzz";
        pipeline.queue = "q";
        pipeline.table_name = "t";
        table.schema = "public";
        table.name = "t";
    }
    void add(ColumnSource source, const std::string& source_text, TypeCategory category,
             std::optional<std::string> default_value = std::nullopt, bool required = false) {
        ColumnMapping m;
        m.column = "c" + std::to_string(pipeline.columns.size()) + "_" + category_name(category);
        m.source_text = source_text;
        m.source = std::move(source);
        m.default_value = std::move(default_value);
        m.required = required;
        table.columns.push_back({m.column, category_name(category), category, required});
        pipeline.columns.push_back(std::move(m));
    }
};

// Pointers of every shape: whole document, members, nested objects and arrays, array elements
// inside arrays, escaped tokens (~0 ~1), the empty member name, '-', leading zeros, a root
// array index, and tokens that cannot exist.
const char* const kPointers[] = {"",         "/",      "/id",     "/a",       "/a/b",     "/a/b/0",
                                 "/a/b/2/c", "/arr",   "/arr/0",  "/arr/0/1", "/arr/1/x", "/0",
                                 "/1",       "/ts",    "/tags",   "/n",       "/s",       "/a~1b",
                                 "/m~0n",    "/arr/-", "/arr/01", "/b",       "/o/p/q/r", "/é",
                                 "/ a",      "/0/0/0", "/null",   "/t"};

// Every pointer into every category, half of them with a default value that itself needs COPY
// escaping; no required column, so one miss does not hide the columns after it.
Spec json_spec() {
    Spec s;
    int n = 0;
    for (const char* pointer : kPointers) {
        for (TypeCategory category : kCategories) {
            std::optional<std::string> def;
            if (++n % 2 == 0)
                def = n % 4 == 0 ? std::string("d\t\\N\n\r") : std::string("");
            s.add({Kind::json_pointer, pointer}, pointer, category, def);
        }
    }
    for (TypeCategory category : kCategories)
        s.add({Kind::body, ""}, "$body", category);
    return s;
}

// Required columns (one with a default, which wins): refusal paths and buffer restoring.
Spec required_spec() {
    Spec s;
    s.add({Kind::json_pointer, "/id"}, "/id", TypeCategory::text, std::nullopt, true);
    s.add({Kind::json_pointer, "/a/b"}, "/a/b", TypeCategory::json);
    s.add({Kind::json_pointer, "/ts"}, "/ts", TypeCategory::timestamp, std::string("0"), true);
    s.add({Kind::json_pointer, "/arr"}, "/arr", TypeCategory::array, std::nullopt, true);
    s.add({Kind::header, "h"}, "$header.h", TypeCategory::text, std::nullopt, true);
    return s;
}

// No JSON pointer, so the body is never parsed: every metadata source and a header, which the
// fuzzer fills, into every category; required and defaulted variants too.
Spec metadata_spec() {
    Spec s;
    const std::pair<Kind, const char*> sources[] = {
        {Kind::body, "$body"},           {Kind::routing_key, "$routing_key"},
        {Kind::exchange, "$exchange"},   {Kind::message_id, "$message_id"},
        {Kind::timestamp, "$timestamp"}, {Kind::content_type, "$content_type"},
    };
    for (TypeCategory category : kCategories) {
        for (const auto& [kind, text] : sources) {
            if (kind == Kind::timestamp && category == TypeCategory::timestamp)
                s.timestamp_fields.push_back(s.pipeline.columns.size());
            s.add({kind, ""}, text, category);
        }
        if (category == TypeCategory::timestamp)
            s.timestamp_header_fields.push_back(s.pipeline.columns.size());
        s.add({Kind::header, "h"}, "$header.h", category);
        s.add({Kind::header, "absent"}, "$header.absent", category, std::string("x\ty"));
    }
    s.add({Kind::message_id, ""}, "$message_id", TypeCategory::text, std::nullopt, true);
    return s;
}

// An upsert target with a version, delete_when and a dedupe id: rows get the dedupe id and the
// operation ('u'/'d') as two extra fields, and a delete needs only its key and version.
Spec upsert_spec() {
    Spec s;
    s.add({Kind::json_pointer, "/id"}, "/id", TypeCategory::text, std::nullopt, true);
    s.add({Kind::json_pointer, "/v"}, "/v", TypeCategory::text, std::nullopt, true);
    s.add({Kind::json_pointer, "/name"}, "/name", TypeCategory::text, std::nullopt, true);
    s.add({Kind::json_pointer, "/arr"}, "/arr", TypeCategory::array);
    s.pipeline.mode = rmq2pg::WriteMode::upsert;
    s.pipeline.key = {s.pipeline.columns[0].column};
    s.pipeline.version = s.pipeline.columns[1].column;
    s.pipeline.delete_when = rmq2pg::DeleteRule{"/op", "delete"};
    return s;
}

using Headers = std::map<std::string, HeaderValue, std::less<>>;

// As tests/unit/test_row_mapper.cpp: the delivery's header table is a plain map.
std::optional<HeaderValue> find_test_header(const void* headers, std::string_view name) {
    const auto& map = *static_cast<const Headers*>(headers);
    auto it = map.find(name);
    if (it == map.end())
        return std::nullopt;
    return it->second;
}

[[noreturn]] void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_row_mapper: %s: [%.*s]\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

// A COPY text row of `columns` fields: exactly columns-1 unescaped tabs, no raw newline or
// carriage return, every backslash starts a known escape, and \N only as a whole field.
void check_row(std::string_view row, std::size_t columns) {
    std::size_t tabs = 0, field_start = 0;
    for (std::size_t i = 0; i < row.size(); ++i) {
        char c = row[i];
        if (c == '\t') {
            ++tabs;
            field_start = i + 1;
        } else if (c == '\n' || c == '\r') {
            fail("raw newline in a row", row);
        } else if (c == '\\') {
            if (i + 1 >= row.size())
                fail("row ends in a lone backslash", row);
            char e = row[++i];
            if (e == 'N') {
                bool whole = i - 1 == field_start && (i + 1 == row.size() || row[i + 1] == '\t');
                if (!whole)
                    fail("\\N inside a field", row);
            } else if (e != '\\' && e != 't' && e != 'n' && e != 'r') {
                fail("unknown COPY escape", row);
            }
        }
    }
    if (tabs != columns - 1)
        fail("wrong number of field separators", row);
}

// Field `index` (0-based) of a COPY row, still escaped.
std::string_view field_of(std::string_view row, std::size_t index) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < row.size(); ++i) {
        if (row[i] == '\\') {
            ++i;
        } else if (row[i] == '\t') {
            if (index-- == 0)
                return row.substr(start, i - start);
            start = i + 1;
        }
    }
    return row.substr(start);
}

// "YYYY-MM-DD HH:MM:SS.ffffff+00" with a 4- to 6-digit year, as PostgreSQL reads it.
bool is_timestamp_text(std::string_view s) {
    std::size_t year = 0;
    while (year < s.size() && s[year] >= '0' && s[year] <= '9')
        ++year;
    if (year < 4 || year > 6)
        return false;
    std::string_view rest = s.substr(year);
    const std::string_view shape = "-DD-DD DD:DD:DD.DDDDDD+00";
    if (rest.size() != shape.size())
        return false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        bool ok = shape[i] == 'D' ? rest[i] >= '0' && rest[i] <= '9' : rest[i] == shape[i];
        if (!ok)
            return false;
    }
    return true;
}

// Maps `d` after an earlier row already in the buffer, as a batch does; `columns` counts every
// field of a row. Fields listed in `epoch_fields` come from an AMQP timestamp into a timestamp
// column: a mapped row must have turned them into a time (or refused the message).
void map_one(RowMapper& mapper, std::size_t columns, const Delivery& d,
             const std::vector<std::size_t>& epoch_fields = {}, bool ends_in_operation = false) {
    static const std::string earlier = "earlier\trow\n";
    std::string out = earlier;
    auto error = mapper.append_row(d, out);
    if (error) {
        if (out != earlier)
            fail("refused message changed the buffer", out);
        if (error->empty())
            fail("refused without a reason", out);
        return;
    }
    if (out.compare(0, earlier.size(), earlier) != 0)
        fail("earlier row was modified", out);
    std::string_view row = std::string_view(out).substr(earlier.size());
    check_row(row, columns);
    for (std::size_t index : epoch_fields)
        if (!is_timestamp_text(field_of(row, index)))
            fail("timestamp column not rendered as a time", row);
    if (ends_in_operation) {
        std::string_view op = field_of(row, columns - 1);
        if (op != "u" && op != "d")
            fail("last field is not the operation u or d", row);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Built once and reused across inputs: the daemon reuses one mapper (and its parser buffers)
    // for every message of a worker, so state carried between messages is exercised too.
    static Spec json = json_spec(), required = required_spec(), metadata = metadata_spec();
    static RowMapper json_mapper(json.pipeline, json.table);
    static RowMapper required_mapper(required.pipeline, required.table);
    static RowMapper metadata_mapper(metadata.pipeline, metadata.table);
    static Spec upsert = upsert_spec();
    static RowMapper upsert_mapper(upsert.pipeline, upsert.table, "/meta/id");
    static RowMapper dedupe_mapper(upsert.pipeline, upsert.table, "message_id");
    // Every row of these two ends with the dedupe id and the operation.
    static const std::size_t upsert_fields = upsert.pipeline.columns.size() + 2;

    const std::string_view input(reinterpret_cast<const char*>(data), size);

    // 1. The input as a JSON body.
    Delivery d;
    d.body = input;
    map_one(json_mapper, json.pipeline.columns.size(), d);
    map_one(upsert_mapper, upsert_fields, d, {}, true);

    Headers headers;
    headers["h"] = {HeaderValue::Kind::number, "42"};
    d.find_header = find_test_header;
    d.headers = &headers;
    map_one(required_mapper, required.pipeline.columns.size(), d);

    // 2. The input as every metadata value and as a header of each kind; the first 8 bytes are
    // also the AMQP timestamp (any 64-bit value can arrive from a publisher).
    d.routing_key = d.exchange = d.message_id = d.content_type = input;
    if (size >= sizeof(std::int64_t)) {
        std::int64_t ts;
        std::memcpy(&ts, data, sizeof ts);
        d.timestamp = ts;
    }
    for (auto kind :
         {HeaderValue::Kind::text, HeaderValue::Kind::number, HeaderValue::Kind::boolean,
          HeaderValue::Kind::timestamp, HeaderValue::Kind::json}) {
        headers["h"] = {kind, std::string(input)};
        std::vector<std::size_t> epoch_fields;
        if (d.timestamp)
            epoch_fields = metadata.timestamp_fields;
        if (kind == HeaderValue::Kind::timestamp)
            epoch_fields.insert(epoch_fields.end(), metadata.timestamp_header_fields.begin(),
                                metadata.timestamp_header_fields.end());
        map_one(metadata_mapper, metadata.pipeline.columns.size(), d, epoch_fields);
        map_one(required_mapper, required.pipeline.columns.size(), d);
    }
    map_one(dedupe_mapper, upsert_fields, d, {}, true);  // the input as message_id too
    return 0;
}
