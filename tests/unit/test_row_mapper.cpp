// Delivery → COPY text row: escaping, JSON value rendering per column type, message metadata
// and headers, missing/null/default/required handling, and parser reuse across messages.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "column_conversion.h"
#include "row_mapper.h"

using rmq2pg::ColumnMapping;
using rmq2pg::Delivery;
using rmq2pg::HeaderValue;
using rmq2pg::PipelineConfig;
using rmq2pg::RowMapper;
using rmq2pg::TableSchema;
using rmq2pg::TypeCategory;
using Kind = rmq2pg::ColumnSource::Kind;

namespace {

// One mapped column: target name, source as written in a config, target type category.
struct Col {
    std::string name;
    std::string source;
    TypeCategory category = TypeCategory::text;
    std::optional<std::string> default_value = std::nullopt;
    bool required = false;
    std::string type_name = "sometype";  // as format_type() prints it: bigint, real, ...
};

ColumnMapping mapping_of(const Col& c) {
    ColumnMapping m;
    m.column = c.name;
    m.source_text = c.source;
    m.default_value = c.default_value;
    m.required = c.required;
    static const std::map<std::string, Kind> names = {
        {"$body", Kind::body},           {"$routing_key", Kind::routing_key},
        {"$exchange", Kind::exchange},   {"$message_id", Kind::message_id},
        {"$timestamp", Kind::timestamp}, {"$content_type", Kind::content_type},
    };
    if (c.source.empty() || c.source[0] == '/') {
        m.source = {Kind::json_pointer, c.source};
    } else if (c.source.rfind("$header.", 0) == 0) {
        m.source = {Kind::header, c.source.substr(8)};
    } else {
        m.source = {names.at(c.source), ""};
    }
    return m;
}

PipelineConfig pipeline_of(const std::vector<Col>& cols) {
    PipelineConfig p;
    p.name = "test";
    p.queue = "q";
    p.table_name = "t";
    for (const auto& c : cols)
        p.columns.push_back(mapping_of(c));
    return p;
}

// The table has every mapped column (with its category) plus one unmapped column.
TableSchema table_of(const std::vector<Col>& cols) {
    TableSchema t;
    t.schema = "public";
    t.name = "t";
    t.columns.push_back({"unmapped", "text", TypeCategory::text, false});
    for (const auto& c : cols)
        t.columns.push_back({c.name, c.type_name, c.category, false});
    return t;
}

RowMapper mapper_of(const std::vector<Col>& cols) {
    return RowMapper(pipeline_of(cols), table_of(cols));
}

// Maps one delivery and returns the row, or "ERROR: <reason>" when the mapper reports one (so
// the CHECK comparing it shows the reason and the test case goes on).
std::string row(const std::vector<Col>& cols, const Delivery& d) {
    RowMapper mapper = mapper_of(cols);
    std::string out;
    if (auto error = mapper.append_row(d, out))
        return "ERROR: " + *error;
    return out;
}

std::string row(const std::vector<Col>& cols, std::string_view body) {
    Delivery d;
    d.body = body;
    return row(cols, d);
}

// Maps one delivery that must fail and returns the reason (or "(no error; ...)" for the CHECK
// on it to show); checks a failed row leaves the output buffer exactly as it was.
std::string row_error(const std::vector<Col>& cols, std::string_view body) {
    RowMapper mapper = mapper_of(cols);
    Delivery d;
    d.body = body;
    const std::string before = "earlier row\t1\n";
    std::string out = before;
    auto error = mapper.append_row(d, out);
    if (!error)
        return "(no error; mapped to: " + out.substr(before.size()) + ")";
    CHECK(out == before);
    return *error;
}

Col text(std::string name, std::string source) {
    return {std::move(name), std::move(source)};
}
Col typed(std::string name, std::string source, TypeCategory category) {
    return {std::move(name), std::move(source), category};
}
// A column of a type the catalog names (a text-category type such as bigint or real).
Col of_type(std::string name, std::string source, std::string type_name) {
    Col c{std::move(name), std::move(source)};
    c.type_name = std::move(type_name);
    return c;
}

using Headers = std::map<std::string, HeaderValue, std::less<>>;

std::optional<HeaderValue> find_test_header(const void* headers, std::string_view name) {
    const auto& map = *static_cast<const Headers*>(headers);
    auto it = map.find(name);
    if (it == map.end())
        return std::nullopt;
    return it->second;
}

}  // namespace

TEST_CASE("append_copy_escaped escapes backslash, tab, newline and carriage return",
          "[row_mapper]") {
    std::string out = "kept|";
    rmq2pg::append_copy_escaped(out, "a\tb\nc\rd\\e");
    CHECK(out == R"(kept|a\tb\nc\rd\\e)");

    SECTION("plain text is copied as it is") {
        std::string plain;
        rmq2pg::append_copy_escaped(plain, "hello, world {} \"quoted\" é");
        CHECK(plain == "hello, world {} \"quoted\" é");
    }
    SECTION("empty text appends nothing") {
        std::string empty = "x";
        rmq2pg::append_copy_escaped(empty, "");
        CHECK(empty == "x");
    }
    SECTION("\\N in a value is not mistaken for NULL") {
        std::string s;
        rmq2pg::append_copy_escaped(s, "\\N");
        CHECK(s == R"(\\N)");
    }
    SECTION("only special characters") {
        std::string s;
        rmq2pg::append_copy_escaped(s, "\\\\\t\t");
        CHECK(s == R"(\\\\\t\t)");
    }
    SECTION("every position and length agrees with a byte-at-a-time reference") {
        // The fast path scans 16 bytes at a time: specials at every offset around those blocks,
        // and bytes >= 0x80 (negative chars), must come out as the plain loop escapes them.
        auto reference = [](std::string_view v) {
            std::string r;
            for (char c : v) {
                if (c == '\\')
                    r += "\\\\";
                else if (c == '\t')
                    r += "\\t";
                else if (c == '\n')
                    r += "\\n";
                else if (c == '\r')
                    r += "\\r";
                else
                    r += c;
            }
            return r;
        };
        const char alphabet[] = {'a', '\\', '\t', '\n', '\r', '\xe9', '\0', 'N', '\x5c'};
        std::uint64_t state = 42;
        for (int round = 0; round < 2000; ++round) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            std::size_t length = (state >> 33) % 70;
            std::string value;
            for (std::size_t i = 0; i < length; ++i) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                // Mostly plain bytes, so long runs without a special occur too.
                std::size_t pick = (state >> 33) % 40;
                value +=
                    pick < sizeof alphabet ? alphabet[pick] : static_cast<char>('b' + pick % 20);
            }
            std::string escaped;
            rmq2pg::append_copy_escaped(escaped, value);
            INFO("round " << round << " length " << length);
            REQUIRE(escaped == reference(value));
        }
    }
}

TEST_CASE("a row is the mapped columns in mapping order, tab separated, no newline",
          "[row_mapper]") {
    const std::vector<Col> cols = {text("b", "/b"), text("a", "/a"), text("c", "/c")};
    CHECK(row(cols, R"({"a":"A","b":"B","c":"C"})") == "B\tA\tC");
}

TEST_CASE("string values are unescaped from JSON and escaped for COPY", "[row_mapper]") {
    const std::vector<Col> cols = {text("s", "/s")};
    CHECK(row(cols, R"({"s":"a\tb\nc\\d\re"})") == R"(a\tb\nc\\d\re)");
    CHECK(row(cols, R"({"s":"say \"hi\""})") == R"(say "hi")");
    CHECK(row(cols, R"({"s":"caf\u00e9 \u2603"})") == "café ☃");
    CHECK(row(cols, R"({"s":"café"})") == "café");
    CHECK(row(cols, R"({"s":""})") == "");
    CHECK(row(cols, R"({"s":"\\N"})") == R"(\\N)");
}

TEST_CASE("numbers keep their exact digits", "[row_mapper]") {
    const std::vector<Col> cols = {text("a", "/a"), text("b", "/b"), text("c", "/c"),
                                   text("d", "/d"), text("e", "/e"), text("f", "/f")};
    CHECK(row(cols, R"({"a":123.4500,"b":12345678901234567890.123,"c":-0.0,"d":1E+400,)"
                    R"("e":42 , "f" : 7 })") ==
          "123.4500\t12345678901234567890.123\t-0.0\t1E+400\t42\t7");
    SECTION("a malformed number is still refused") {
        CHECK_THAT(row_error({text("d", "/d")}, R"({"d":1E+400.5, "n": 123456789012345678901234})"),
                   Catch::Contains("not JSON"));
        CHECK_THAT(row_error({text("d", "/d")}, R"({"d":0123})"), Catch::Contains("not JSON"));
    }
    SECTION("in a pretty-printed body") {
        CHECK(row({text("a", "/a")}, "{\n  \"a\": 1.10\n}\n") == "1.10");
    }
}

// RFC 8259 puts no limit on a number's digits and PostgreSQL's numeric takes them all; an
// integer wider than 64 bits is valid JSON and must reach the column digit for digit, as the
// same digits with a ".0" do.
TEST_CASE("an integer wider than 64 bits keeps its exact digits", "[row_mapper]") {
    CHECK(row({text("n", "/n")}, R"({"n":123456789012345678901234567890.0})") ==
          "123456789012345678901234567890.0");
    CHECK(row({text("n", "/n")}, R"({"n":123456789012345678901234567890})") ==
          "123456789012345678901234567890");
    CHECK(row({text("n", "/n")}, R"({"n":-99999999999999999999})") == "-99999999999999999999");
    CHECK(row({typed("a", "/a", TypeCategory::array)}, R"({"a":[18446744073709551616]})") ==
          "{18446744073709551616}");
}

TEST_CASE("booleans become true and false", "[row_mapper]") {
    const std::vector<Col> cols = {typed("t", "/t", TypeCategory::boolean),
                                   typed("f", "/f", TypeCategory::boolean), text("x", "/t")};
    CHECK(row(cols, R"({"t":true,"f":false})") == "true\tfalse\ttrue");
}

TEST_CASE("JSON pointers reach nested values", "[row_mapper]") {
    const std::string body =
        R"({"a":{"b":["x","y",{"c":3}]},"a/b":"slash","m~n":"tilde","":"empty",)"
        R"("n":5,"arr":[[1,2],[3]]})";
    CHECK(row({text("v", "/a/b/0")}, body) == "x");
    CHECK(row({text("v", "/a/b/1")}, body) == "y");
    CHECK(row({text("v", "/a/b/2/c")}, body) == "3");
    CHECK(row({text("v", "/a~1b")}, body) == "slash");
    CHECK(row({text("v", "/m~0n")}, body) == "tilde");
    CHECK(row({text("v", "/")}, body) == "empty");
    CHECK(row({text("v", "/arr/0/1")}, body) == "2");
    CHECK(row({text("v", "/a/b/2")}, body) == R"({"c":3})");

    SECTION("a root array") {
        CHECK(row({text("v", "/1")}, R"(["p","q"])") == "q");
    }
}

TEST_CASE("a missing field or a JSON null is \\N", "[row_mapper]") {
    const std::string body = R"({"a":{"b":[1]},"n":5,"z":null})";
    CHECK(row({text("v", "/nope")}, body) == R"(\N)");
    CHECK(row({text("v", "/z")}, body) == R"(\N)");
    CHECK(row({text("v", "/a/b/7")}, body) == R"(\N)");  // index past the end
    CHECK(row({text("v", "/a/x")}, body) == R"(\N)");
    CHECK(row({text("a", "/nope"), text("b", "/z"), text("c", "/n")}, body) == "\\N\t\\N\t5");
    for (TypeCategory category :
         {TypeCategory::json, TypeCategory::timestamp, TypeCategory::boolean, TypeCategory::bytea,
          TypeCategory::array}) {
        INFO("category " << static_cast<int>(category));
        CHECK(row({typed("v", "/z", category)}, body) == R"(\N)");
        CHECK(row({typed("v", "/nope", category)}, body) == R"(\N)");
    }
}

// row_mapper.cpp means these to be "missing" (its INCORRECT_TYPE branch: "/a/b where /a is a
// number: the field cannot exist"): the body is valid JSON, the field just is not there.
TEST_CASE("a pointer that goes through a scalar finds nothing", "[row_mapper]") {
    const std::string body = R"({"a":{"b":[1]},"n":5,"s":"str","z":null,"t":true})";
    CHECK(row({text("v", "/n/x")}, body) == R"(\N)");      // inside a number
    CHECK(row({text("v", "/s/0")}, body) == R"(\N)");      // inside a string
    CHECK(row({text("v", "/t/x")}, body) == R"(\N)");      // inside a boolean
    CHECK(row({text("v", "/z/x")}, body) == R"(\N)");      // inside a null
    CHECK(row({text("v", "/a/b/0/x")}, body) == R"(\N)");  // inside an array element
    SECTION("with a default, the default is used") {
        Col c{"v", "/n/x", TypeCategory::text, std::string("d")};
        CHECK(row({c}, body) == "d");
    }
}

TEST_CASE("an array index that is not a number finds nothing", "[row_mapper]") {
    // RFC 6901: "/a/b/x" on an array names no element; it is a missing field, not a bad body.
    CHECK(row({text("v", "/a/b/x")}, R"({"a":{"b":[1,2]}})") == R"(\N)");
}

TEST_CASE("the default is used when the value is missing or null", "[row_mapper]") {
    Col c{"cur", "/currency", TypeCategory::text, std::string("EUR")};
    CHECK(row({c}, R"({"currency":"USD"})") == "USD");
    CHECK(row({c}, R"({"currency":null})") == "EUR");
    CHECK(row({c}, R"({})") == "EUR");

    SECTION("the default is COPY-escaped") {
        Col tab{"x", "/x", TypeCategory::text, std::string("a\tb\\c")};
        CHECK(row({tab}, "{}") == R"(a\tb\\c)");
    }
    SECTION("an empty default is an empty string, not NULL") {
        Col empty{"x", "/x", TypeCategory::text, std::string("")};
        CHECK(row({empty, text("y", "/y")}, "{}") == "\t\\N");
    }
    SECTION("a default wins over required") {
        Col both{"x", "/x", TypeCategory::text, std::string("d"), true};
        CHECK(row({both}, "{}") == "d");
    }
    SECTION("a default also covers missing metadata") {
        Col mid{"m", "$message_id", TypeCategory::text, std::string("none")};
        CHECK(row({mid}, "") == "none");
    }
}

TEST_CASE("a required value that is missing or null is an error and the buffer is unchanged",
          "[row_mapper]") {
    const std::vector<Col> cols = {
        text("id", "/id"), text("name", "/name"),
        Col{"account", "/account", TypeCategory::text, std::nullopt, true}};
    SECTION("missing") {
        CHECK(row_error(cols, R"({"id":1,"name":"n"})") ==
              "column 'account' is required but /account is missing or null");
    }
    SECTION("null") {
        CHECK(row_error(cols, R"({"id":1,"account":null})") ==
              "column 'account' is required but /account is missing or null");
    }
    SECTION("present") {
        CHECK(row(cols, R"({"id":1,"account":"acc"})") == "1\t\\N\tacc");
    }
    SECTION("a required header") {
        const std::vector<Col> hcols = {
            Col{"t", "$header.tenant", TypeCategory::text, std::nullopt, true}};
        CHECK(row_error(hcols, "{}") ==
              "column 't' is required but $header.tenant is missing or null");
    }
}

TEST_CASE("a body that is not JSON is an error and the buffer is unchanged", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id"), text("rk", "$routing_key")};
    for (const char* body : {"not json", "", "   ", "{\"id\": ", "{\"id\": 1",
                             "{\"id\": \"unterminated}", "\xff\xfe{}"}) {
        INFO("body: '" << body << "'");
        auto error = row_error(cols, body);
        CHECK_THAT(error, Catch::Contains("not") && Catch::Contains("JSON"));
    }
    SECTION("a body that is never parsed does not need to be JSON") {
        Delivery d;
        d.body = "plain text\n";
        d.routing_key = "rk";
        CHECK(row({text("b", "$body"), text("rk", "$routing_key")}, d) == "plain text\\n\trk");
    }
}

// simdjson On-Demand only validates what it reads; a body with a syntax error away from the
// mapped fields must still be rejected, not written as a row.
TEST_CASE("a body with a syntax error outside the mapped fields is an error", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id")};
    for (const char* body : {R"({"x":[1,}, "id":2})", R"({"id":1,,})", R"({"id":1,"x":tru})"}) {
        INFO("body: " << body);
        CHECK_THAT(row_error(cols, body), Catch::Contains("JSON"));
    }
}

TEST_CASE("a json column gets the value's JSON text", "[row_mapper]") {
    const std::string body =
        R"({"s":"abc","q":"a\"b\\c","o":{"x": [1, 2], "y": null},"a":[1, "two", null],)"
        R"("n":12.50,"t":true,"z":null,"e":{},"ea":[]})";
    auto j = [](const char* pointer) { return typed("j", pointer, TypeCategory::json); };
    CHECK(row({j("/s")}, body) == R"("abc")");
    // The raw JSON token "a\"b\\c", then COPY-escaped (each backslash doubled).
    CHECK(row({j("/q")}, body) == R"("a\\"b\\\\c")");
    CHECK(row({j("/o")}, body) == R"({"x": [1, 2], "y": null})");
    CHECK(row({j("/a")}, body) == R"([1, "two", null])");
    CHECK(row({j("/n")}, body) == "12.50");
    CHECK(row({j("/t")}, body) == "true");
    CHECK(row({j("/z")}, body) == R"(\N)");
    CHECK(row({j("/e")}, body) == "{}");
    CHECK(row({j("/ea")}, body) == "[]");
    SECTION("an object or array in a text column is its JSON text too") {
        CHECK(row({text("v", "/o")}, body) == R"({"x": [1, 2], "y": null})");
        CHECK(row({text("v", "/a")}, body) == R"([1, "two", null])");
    }
    SECTION("a multi-line object keeps its layout, newlines COPY-escaped") {
        CHECK(row({j("/o")}, "{\"o\": {\n  \"k\": 1\n}}") == R"({\n  "k": 1\n})");
    }
    SECTION("the whole document with the pointer \"\"") {
        CHECK(row({j("")}, R"({"a": 1})") == R"({"a": 1})");
    }
}

TEST_CASE("an array column gets a PostgreSQL array literal", "[row_mapper]") {
    auto arr = [](const char* pointer) { return typed("tags", pointer, TypeCategory::array); };
    SECTION("every string element is double-quoted, with \" and \\ backslash-escaped") {
        // Array literal: {"a","b,c","{x}","NULL","q\"uote","back\\slash"}; COPY then doubles
        // every backslash.
        CHECK(row({arr("/v")}, R"({"v":["a","b,c","{x}","NULL","q\"uote","back\\slash"]})") ==
              R"({"a","b,c","{x}","NULL","q\\"uote","back\\\\slash"})");
    }
    SECTION("an empty array is {}") {
        CHECK(row({arr("/v")}, R"({"v":[]})") == "{}");
    }
    SECTION("JSON nulls are NULL") {
        CHECK(row({arr("/v")}, R"({"v":[null,"x",null]})") == R"({NULL,"x",NULL})");
    }
    SECTION("numbers and booleans are bare") {
        CHECK(row({arr("/v")}, R"({"v":[1, 2.50 ,-3e2,true,false]})") ==
              "{1,2.50,-3e2,true,false}");
    }
    SECTION("nested arrays") {
        CHECK(row({arr("/v")}, R"({"v":[[1,2],[3,null]]})") == "{{1,2},{3,NULL}}");
        CHECK(row({arr("/v")}, R"({"v":[["a"],["b"]]})") == R"({{"a"},{"b"}})");
        CHECK(row({arr("/v")}, R"({"v":[[]]})") == "{{}}");
    }
    SECTION("objects are quoted JSON text") {
        CHECK(row({arr("/v")}, R"({"v":[{"k":"v"}]})") == R"({"{\\"k\\":\\"v\\"}"})");
    }
    SECTION("tabs and newlines inside elements are COPY-escaped") {
        CHECK(row({arr("/v")}, R"({"v":["a\tb","c\nd"]})") == R"({"a\tb","c\nd"})");
    }
    SECTION("a string value is passed through as an already-written literal") {
        CHECK(row({arr("/v")}, R"({"v":"{1,2}"})") == "{1,2}");
    }
    SECTION("the next column still maps after an array") {
        CHECK(row({arr("/v"), text("w", "/w")}, R"({"v":["a"],"w":"after"})") == "{\"a\"}\tafter");
    }
}

TEST_CASE("a timestamp column turns epoch seconds into a UTC timestamp", "[row_mapper]") {
    auto ts = [](const char* pointer) { return typed("at", pointer, TypeCategory::timestamp); };
    CHECK(row({ts("/t")}, R"({"t":0})") == "1970-01-01 00:00:00.000000+00");
    CHECK(row({ts("/t")}, R"({"t":1.5})") == "1970-01-01 00:00:01.500000+00");
    CHECK(row({ts("/t")}, R"({"t":1700000000})") == "2023-11-14 22:13:20.000000+00");
    CHECK(row({ts("/t")}, R"({"t":1700000000.25})") == "2023-11-14 22:13:20.250000+00");
    CHECK(row({ts("/t")}, R"({"t":0.000001})") == "1970-01-01 00:00:00.000001+00");
    CHECK(row({ts("/t")}, R"({"t":-1.5})") == "1969-12-31 23:59:58.500000+00");
    CHECK(row({ts("/t")}, R"({"t":951782400})") == "2000-02-29 00:00:00.000000+00");
    SECTION("a fraction that rounds up to a whole second carries") {
        CHECK(row({ts("/t")}, R"({"t":59.9999999})") == "1970-01-01 00:01:00.000000+00");
    }
    SECTION("a string is passed through for PostgreSQL to parse") {
        CHECK(row({ts("/t")}, R"({"t":"2024-05-01T12:00:00Z"})") == "2024-05-01T12:00:00Z");
    }
    SECTION("a number that is not a time is an error") {
        auto error = row_error({ts("/t")}, R"({"t":1e300})");
        CHECK(error == "column 'at' from /t: number 1e300 is not a time in epoch seconds");
    }
}

TEST_CASE("a bytea column gets strings and bodies hex-encoded", "[row_mapper]") {
    // bytea hex input is \x6162; COPY escaping doubles the backslash.
    CHECK(row({typed("b", "/b", TypeCategory::bytea)}, R"({"b":"ab"})") == "\\\\x6162");
    CHECK(row({typed("b", "/b", TypeCategory::bytea)}, R"({"b":""})") == "\\\\x");
    CHECK(row({typed("b", "/b", TypeCategory::bytea)}, R"({"b":"\u00ff\n"})") == "\\\\xc3bf0a");
    SECTION("$body") {
        Delivery d;
        const std::string body("\x00\x01\xfe\xff", 4);
        d.body = body;
        CHECK(row({typed("raw", "$body", TypeCategory::bytea)}, d) == "\\\\x0001feff");
    }
}

TEST_CASE("message metadata sources", "[row_mapper]") {
    Delivery d;
    d.body = "{\"id\":7}\n";
    d.routing_key = "orders.eu";
    d.exchange = "ex\tchange";
    d.message_id = "m-1";
    d.content_type = "application/json";
    d.timestamp = 1700000000;

    SECTION("$body is the body as received") {
        CHECK(row({text("b", "$body")}, d) == R"({"id":7}\n)");
        CHECK(row({typed("b", "$body", TypeCategory::json)}, d) == R"({"id":7}\n)");
    }
    SECTION("$routing_key") {
        CHECK(row({text("rk", "$routing_key")}, d) == "orders.eu");
    }
    SECTION("$exchange, COPY-escaped") {
        CHECK(row({text("ex", "$exchange")}, d) == R"(ex\tchange)");
    }
    SECTION("$message_id") {
        CHECK(row({text("m", "$message_id")}, d) == "m-1");
    }
    SECTION("$content_type") {
        CHECK(row({text("c", "$content_type")}, d) == "application/json");
    }
    SECTION("$timestamp in a text column is the epoch number") {
        CHECK(row({text("ts", "$timestamp")}, d) == "1700000000");
    }
    SECTION("$timestamp in a timestamp column is a UTC timestamp") {
        CHECK(row({typed("ts", "$timestamp", TypeCategory::timestamp)}, d) ==
              "2023-11-14 22:13:20.000000+00");
    }
    SECTION("text metadata in a json column is a JSON string") {
        d.routing_key = "a\"b";
        CHECK(row({typed("rk", "$routing_key", TypeCategory::json)}, d) == R"("a\\"b")");
        CHECK(row({typed("m", "$message_id", TypeCategory::json)}, d) == R"("m-1")");
    }
    SECTION("absent metadata is \\N") {
        Delivery bare;
        bare.body = "{}";
        CHECK(row({text("m", "$message_id"), text("c", "$content_type"), text("ts", "$timestamp"),
                   text("h", "$header.x")},
                  bare) == "\\N\t\\N\t\\N\t\\N");
    }
    SECTION("an empty routing key or exchange is an empty string") {
        Delivery bare;
        CHECK(row({text("rk", "$routing_key"), text("ex", "$exchange")}, bare) == "\t");
    }
    SECTION("all together with a JSON field") {
        CHECK(row({text("id", "/id"), text("rk", "$routing_key"), text("m", "$message_id")}, d) ==
              "7\torders.eu\tm-1");
    }
}

TEST_CASE("$header.NAME reads the delivery's headers", "[row_mapper]") {
    Headers headers;
    headers["tenant"] = HeaderValue{HeaderValue::Kind::text, "acme\tinc"};
    headers["count"] = HeaderValue{HeaderValue::Kind::number, "42"};
    headers["flag"] = HeaderValue{HeaderValue::Kind::boolean, "true"};
    headers["sent"] = HeaderValue{HeaderValue::Kind::timestamp, "0"};
    headers["meta"] = HeaderValue{HeaderValue::Kind::json, R"({"a":[1]})"};
    Delivery d;
    d.body = "{}";
    d.headers = &headers;
    d.find_header = &find_test_header;

    CHECK(row({text("t", "$header.tenant")}, d) == R"(acme\tinc)");
    CHECK(row({text("n", "$header.count")}, d) == "42");
    CHECK(row({typed("f", "$header.flag", TypeCategory::boolean)}, d) == "true");
    CHECK(row({text("s", "$header.sent")}, d) == "0");
    CHECK(row({typed("s", "$header.sent", TypeCategory::timestamp)}, d) ==
          "1970-01-01 00:00:00.000000+00");
    CHECK(row({typed("m", "$header.meta", TypeCategory::json)}, d) == R"({"a":[1]})");
    CHECK(row({typed("t", "$header.tenant", TypeCategory::json)}, d) == R"("acme\\tinc")");
    CHECK(row({typed("n", "$header.count", TypeCategory::json)}, d) == "42");
    CHECK(row({text("x", "$header.missing")}, d) == R"(\N)");

    SECTION("a delivery without headers has none") {
        Delivery bare;
        bare.find_header = &find_test_header;  // headers stays null
        CHECK(row({text("t", "$header.tenant")}, bare) == R"(\N)");
    }
    SECTION("a missing header takes the column default") {
        Col c{"x", "$header.missing", TypeCategory::text, std::string("fallback")};
        CHECK(row({c}, d) == "fallback");
    }
}

TEST_CASE("a mapped column that is not in the table is rejected at construction", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id"), text("ghost", "/ghost")};
    TableSchema table = table_of({text("id", "/id")});
    try {
        RowMapper mapper(pipeline_of(cols), table);
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "column 'ghost' does not exist in public.t");
    }
    CHECK_THROWS_AS(RowMapper(pipeline_of(cols), table), std::invalid_argument);
}

TEST_CASE("rows appended one after another do not interfere", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id"), text("s", "/s"),
                                   typed("j", "/j", TypeCategory::json)};
    RowMapper mapper = mapper_of(cols);
    std::string out;

    // The first body is much longer than the second, so stale parser or buffer contents from
    // it would show up in the second row.
    const std::string first =
        R"({"id":1,"s":")" + std::string(5000, 'x') + R"(","j":{"deep":[1,2,3,{"k":"v"}]}})";
    const std::string second = R"({"id":2})";
    const std::string third = R"({"s":"three","id":3,"j":[]})";

    Delivery d1, d2, d3, bad;
    d1.body = first;
    d2.body = second;
    d3.body = third;
    bad.body = R"({"id":)";

    REQUIRE_FALSE(mapper.append_row(d1, out).has_value());
    out += '\n';
    REQUIRE_FALSE(mapper.append_row(d2, out).has_value());
    out += '\n';
    const std::string before_bad = out;
    CHECK(mapper.append_row(bad, out).has_value());
    CHECK(out == before_bad);
    REQUIRE_FALSE(mapper.append_row(d3, out).has_value());
    out += '\n';

    CHECK(out == "1\t" + std::string(5000, 'x') +
                     "\t{\"deep\":[1,2,3,{\"k\":\"v\"}]}\n"
                     "2\t\\N\t\\N\n"
                     "3\tthree\t[]\n");

    SECTION("a moved mapper keeps working") {
        RowMapper moved = std::move(mapper);
        std::string more;
        REQUIRE_FALSE(moved.append_row(d2, more).has_value());
        CHECK(more == "2\t\\N\t\\N");
    }
}

TEST_CASE("the same pointer may feed several columns", "[row_mapper]") {
    const std::vector<Col> cols = {text("a", "/o"), typed("b", "/o", TypeCategory::json),
                                   text("c", "/o/k"), text("d", "/x")};
    CHECK(row(cols, R"({"x":"X","o":{"k":"v"}})") == "{\"k\":\"v\"}\t{\"k\":\"v\"}\tv\tX");
}

// docs/config.md "Column types": a number goes into text, numeric and json columns as its exact
// digits, whatever its size (numeric holds 1e400); only a column that must convert it to an
// integer or a float refuses a number that the type cannot hold, and says so.
TEST_CASE("a number beyond a double keeps its exact digits where the column can hold them",
          "[row_mapper]") {
    const std::string body = R"({"a":1e400,"b":-1E+400,"c":1e-400})";
    for (const std::string type : {"text", "numeric", "numeric(500,0)", "character varying"}) {
        INFO("column type " << type);
        CHECK(row({of_type("a", "/a", type), of_type("b", "/b", type), of_type("c", "/c", type)},
                  body) == "1e400\t-1E+400\t1e-400");
    }
    CHECK(row({typed("j", "/a", TypeCategory::json)}, body) == "1e400");
    CHECK(row({typed("arr", "", TypeCategory::json)}, R"([1e400])") == "[1e400]");
}

TEST_CASE("a number a float column cannot hold is an error naming the type", "[row_mapper]") {
    auto dbl = [](const char* body) { return row({of_type("d", "/d", "double precision")}, body); };
    auto flt = [](const char* body) { return row({of_type("r", "/r", "real")}, body); };
    CHECK(dbl(R"({"d":1e400})") ==
          "ERROR: column 'd' from /d: number 1e400 is out of range for double precision");
    CHECK(dbl(R"({"d":-1e400})") ==
          "ERROR: column 'd' from /d: number -1e400 is out of range for double precision");
    CHECK(dbl(R"({"d":1e-400})") ==
          "ERROR: column 'd' from /d: number 1e-400 is out of range for double precision");
    CHECK(flt(R"({"r":1e39})") ==
          "ERROR: column 'r' from /r: number 1e39 is out of range for real");
    CHECK(flt(R"({"r":1e-50})") ==
          "ERROR: column 'r' from /r: number 1e-50 is out of range for real");
    SECTION("numbers the type holds, rounded or not, keep their digits") {
        CHECK(dbl(R"({"d":1.7976931348623157e308})") == "1.7976931348623157e308");
        CHECK(dbl(R"({"d":4.9e-324})") == "4.9e-324");  // subnormal: PostgreSQL takes it
        CHECK(dbl(R"({"d":0.1000000000000000000000001})") == "0.1000000000000000000000001");
        CHECK(dbl(R"({"d":0})") == "0");
        CHECK(dbl(R"({"d":-0.0e-999})") == "-0.0e-999");  // zero written as zero is no underflow
        CHECK(flt(R"({"r":3.4e38})") == "3.4e38");
        CHECK(flt(R"({"r":1e300})") ==
              "ERROR: column 'r' from /r: number 1e300 is out of range for real");
    }
    SECTION("strings are left to PostgreSQL") {
        CHECK(dbl(R"({"d":"1e400"})") == "1e400");
        CHECK(dbl(R"({"d":"NaN"})") == "NaN");
    }
}

TEST_CASE("a number an integer column cannot hold is an error naming the type", "[row_mapper]") {
    auto col = [](const char* type, const char* body) {
        return row({of_type("n", "/n", type)}, body);
    };
    CHECK(col("bigint", R"({"n":9223372036854775807})") == "9223372036854775807");
    CHECK(col("bigint", R"({"n":-9223372036854775808})") == "-9223372036854775808");
    CHECK(col("bigint", R"({"n":9223372036854775808})") ==
          "ERROR: column 'n' from /n: number 9223372036854775808 is out of range for bigint");
    CHECK(col("bigint", R"({"n":-99999999999999999999999})") ==
          "ERROR: column 'n' from /n: number -99999999999999999999999 is out of range for bigint");
    CHECK(col("integer", R"({"n":2147483647})") == "2147483647");
    CHECK(col("integer", R"({"n":-2147483649})") ==
          "ERROR: column 'n' from /n: number -2147483649 is out of range for integer");
    CHECK(col("smallint", R"({"n":-32768})") == "-32768");
    CHECK(col("smallint", R"({"n":40000})") ==
          "ERROR: column 'n' from /n: number 40000 is out of range for smallint");
    CHECK(col("bigint", R"({"n":-0})") == "-0");
    SECTION("a fraction or an exponent is not an integer, as PostgreSQL's input says too") {
        CHECK(col("bigint", R"({"n":1e400})") ==
              "ERROR: column 'n' from /n: number 1e400 is not an integer, as bigint needs");
        CHECK(col("integer", R"({"n":1.5})") ==
              "ERROR: column 'n' from /n: number 1.5 is not an integer, as integer needs");
        CHECK(col("smallint", R"({"n":1.0})") ==
              "ERROR: column 'n' from /n: number 1.0 is not an integer, as smallint needs");
    }
    SECTION("strings, array elements and other types are left to PostgreSQL") {
        CHECK(col("bigint", R"({"n":"12x"})") == "12x");
        CHECK(col("bigint[]", R"({"n":[1e400]})") == "[1e400]");
        CHECK(row({typed("a", "/n", TypeCategory::array)}, R"({"n":[1e400]})") == "{1e400}");
        CHECK(col("numeric(3,0)", R"({"n":123456})") == "123456");
    }
}

// RFC 8259 section 8.1: a parser may ignore a leading byte order mark, and producers on
// Windows send one. It is not part of the JSON text, so only bytea gets it.
TEST_CASE("a body starting with a UTF-8 byte order mark is read without it", "[row_mapper]") {
    const std::string body = "\xEF\xBB\xBF{\"id\":1,\"s\":\"caf\xC3\xA9\"}";
    CHECK(row({text("id", "/id"), text("s", "/s")}, body) == "1\tcafé");
    CHECK(row({text("id", "/id"), text("b", "$body")}, body) == "1\t{\"id\":1,\"s\":\"café\"}");
    CHECK(row({text("id", "/id"), typed("j", "$body", TypeCategory::json)}, body) ==
          "1\t{\"id\":1,\"s\":\"café\"}");
    CHECK(row({typed("j", "", TypeCategory::json)}, body) == "{\"id\":1,\"s\":\"café\"}");
    SECTION("$body without any pointer drops it too") {
        CHECK(row({text("b", "$body")}, body) == "{\"id\":1,\"s\":\"café\"}");
    }
    SECTION("bytea keeps the body's bytes exactly") {
        CHECK(row({typed("raw", "$body", TypeCategory::bytea)}, std::string("\xEF\xBB\xBF{}")) ==
              "\\\\xefbbbf7b7d");
    }
    SECTION("only a leading mark is skipped") {
        CHECK_THAT(row_error({text("id", "/id")}, "{\"id\":1}\xEF\xBB\xBF"),
                   Catch::StartsWith("body is not JSON"));
        CHECK_THAT(row_error({text("id", "/id")}, "\xEF\xBB\xBF\xEF\xBB\xBF{\"id\":1}"),
                   Catch::StartsWith("body is not JSON"));
    }
    SECTION("a mark with nothing after it is an empty body") {
        CHECK(row_error({text("id", "/id")}, "\xEF\xBB\xBF") ==
              "body is not JSON: the body is empty");
    }
}

TEST_CASE("a body that is not JSON gets a reason in plain words", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id")};
    CHECK(row_error(cols, "") == "body is not JSON: the body is empty");
    CHECK(row_error(cols, " \r\n\t ") == "body is not JSON: the body is only whitespace");
    CHECK(row_error(cols, R"({"id": 1, "items": [1, 2)") ==
          "body is not JSON: the body ends before its array is closed (truncated?)");
    CHECK(row_error(cols, R"({"id": 1, "note": {)") ==
          "body is not JSON: the body ends before its object is closed (truncated?)");
    CHECK(row_error(cols, R"({"id": 1)") ==
          "body is not JSON: the body ends before its object is closed (truncated?)");
    CHECK(row_error(cols, R"({"id": 1, "s": "abc)") ==
          "body is not JSON: the body ends inside a string (truncated?)");
    CHECK(row_error(cols, R"({"s": "a \"quoted\" word)") ==
          "body is not JSON: the body ends inside a string (truncated?)");
    CHECK(row_error(cols, "\xff\xfe{}") ==
          "body is not JSON: the body is not valid UTF-8 (byte 0xff at offset 0)");
    CHECK(row_error(cols, "{\"id\":\"caf\xC3\"}") ==
          "body is not JSON: the body is not valid UTF-8 (byte 0xc3 at offset 10)");
    CHECK(row_error(cols, "<order id=\"1\"/>") ==
          "body is not JSON: it starts with '<', which no JSON value starts with");
    CHECK(row_error(cols, "id=1") ==
          "body is not JSON: it starts with 'i', which no JSON value starts with");
    CHECK(row_error(cols, "not json") ==
          "body is not JSON: it starts with the word 'not', which "
          "is not true, false or null (text needs double quotes)");
    SECTION("other syntax errors keep the parser's reason") {
        CHECK_THAT(row_error(cols, R"({"id":1,,})"), Catch::StartsWith("body is not JSON: "));
        CHECK_THAT(row_error(cols, R"({"id":1}})"), Catch::StartsWith("body is not JSON: "));
    }
}

TEST_CASE("a JSON scalar where pointers look for fields is an error saying so", "[row_mapper]") {
    const std::vector<Col> cols = {text("id", "/id")};
    const char* tail =
        ", not a JSON object or array: the columns' JSON Pointers find nothing in it";
    CHECK(row_error(cols, "42") == std::string("body is a number") + tail);
    CHECK(row_error(cols, " \"text\" ") == std::string("body is a string") + tail);
    CHECK(row_error(cols, "true") == std::string("body is a boolean") + tail);
    CHECK(row_error(cols, "null") == std::string("body is null") + tail);
    CHECK(row_error(cols, "1e400") == std::string("body is a number") + tail);
    SECTION("an array is a document pointers can reach into") {
        CHECK(row({text("first", "/0")}, "[7, 8]") == "7");
    }
    SECTION("the whole document alone may be a scalar") {
        CHECK(row({typed("j", "", TypeCategory::json)}, "42") == "42");
        CHECK(row({typed("j", "", TypeCategory::json)}, "\"text\"") == "\"text\"");
    }
}

// Reasons reach log lines and dead-letter headers: a huge value is cut, its length given.
TEST_CASE("a reason quotes at most 200 bytes of a value, with its length", "[row_mapper]") {
    const std::string digits(256 * 1024, '7');
    const std::string cut = std::string(200, '7') + "… (262144 bytes)";
    CHECK(row_error({typed("at", "/t", TypeCategory::timestamp)}, "{\"t\":" + digits + "}") ==
          "column 'at' from /t: number " + cut + " is not a time in epoch seconds");
    CHECK(row_error({of_type("n", "/n", "bigint")}, "{\"n\":" + digits + "}") ==
          "column 'n' from /n: number " + cut + " is out of range for bigint");
    CHECK(row_error({of_type("n", "/n", "bigint")}, "{\"n\":" + digits + ".5}") ==
          "column 'n' from /n: number " + std::string(200, '7') +
              "… (262146 bytes) is not an integer, as bigint needs");
    CHECK(row_error({of_type("d", "/d", "real")}, "{\"d\":" + digits + "}") ==
          "column 'd' from /d: number " + cut + " is out of range for real");
    const std::string word(256 * 1024, 'n');
    CHECK(row_error({text("id", "/id")}, word) ==
          "body is not JSON: it starts with the word '" + std::string(200, 'n') +
              "… (262144 bytes)', which is not true, false or null (text needs double quotes)");
    SECTION("a header timestamp that is not a time") {
        Headers headers = {{"at", {HeaderValue::Kind::timestamp, digits}}};
        Delivery d;
        d.body = "{}";
        d.headers = &headers;
        d.find_header = &find_test_header;
        CHECK(row({typed("at", "$header.at", TypeCategory::timestamp)}, d) ==
              "ERROR: column 'at' from $header.at: timestamp " + cut +
                  " is not a time in epoch seconds");
    }
}
