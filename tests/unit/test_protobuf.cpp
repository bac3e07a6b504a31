// format: protobuf (src/protobuf_schema.cpp, src/protobuf_decoder.cpp): the descriptor set and
// its config errors, pointers spelled against the message, the canonical JSON form of each type,
// the reasons of bodies that do not parse, and a message mapped to its rows. The messages are
// encoded by hand here, so each test shows the bytes it sends.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "aggregate.h"
#include "aggregate_mapper.h"
#include "column_conversion.h"
#include "config.h"
#include "protobuf_decoder.h"
#include "protobuf_schema.h"

using namespace rmq2pg;

namespace {

// Made by protoc at build time from tests/fixtures/protobuf/readings.proto.
const std::string kDescriptorSet = RMQ2PG_TEST_DESCRIPTOR_SET;

const char* const kHead =
    "amqp:\n"
    "  urls: [\"amqp://h/\"]\n"
    "postgres:\n"
    "  url: postgresql://h/db\n";

std::string pipeline_yaml(const std::string& rest,
                          const std::string& message = "rmq2pg.test.Reading",
                          const std::string& file = kDescriptorSet) {
    return std::string(kHead) + "pipelines:\n  - name: readings\n    queue: readings\n" +
           "    format: protobuf\n    protobuf: { descriptor_set: " + file +
           ", message: " + message + " }\n    table: public.readings\n" + rest;
}

std::string problems_of(const std::string& yaml) {
    try {
        load_config_text(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        std::string out;
        for (const auto& p : e.problems())
            out += p + "\n";
        return out;
    }
    return "";
}

// The wire format, by hand.
std::string varint(std::uint64_t v) {
    std::string out;
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
    return out;
}
std::string key(int field, int wire_type) {
    return varint(static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire_type));
}
std::string vint(int field, std::uint64_t v) {
    return key(field, 0) + varint(v);
}
std::string zigzag(int field, std::int64_t v) {
    return vint(field, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}
std::string len(int field, const std::string& bytes) {
    return key(field, 2) + varint(bytes.size()) + bytes;
}
std::string fixed64(int field, std::uint64_t v) {
    std::string out = key(field, 1);
    for (int i = 0; i < 8; ++i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
}
std::string fixed32(int field, std::uint32_t v) {
    std::string out = key(field, 5);
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
}
std::string dbl(int field, double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return fixed64(field, bits);
}
std::string flt(int field, float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return fixed32(field, bits);
}

std::shared_ptr<const ProtobufSchema> schema() {
    static auto s = ProtobufSchema::load(kDescriptorSet, "rmq2pg.test.Reading");
    return s;
}

std::string json_of(const std::string& body) {
    ProtobufDecoder decoder(schema());
    std::string json;
    auto error = decoder.to_json(body, json);
    if (error)
        return "error: " + *error;
    return json;
}

std::string reason_of(const std::string& body) {
    ProtobufDecoder decoder(schema());
    std::string json;
    auto error = decoder.to_json(body, json);
    return error ? *error : "parsed: " + json;
}

}  // namespace

TEST_CASE("format: protobuf loads the descriptor set and spells pointers as the .proto does",
          "[protobuf]") {
    Config c = load_config_text(
        pipeline_yaml("    columns: { id: /id, device: /deviceId, raw: /fBytes, site: "
                      "/location/site, first_raw: /samples/0/raw }\n"),
        "test.yaml");
    const PipelineConfig& p = c.pipelines.at(0);
    CHECK(p.format == MessageFormat::protobuf);
    REQUIRE(p.protobuf.schema);
    CHECK(p.protobuf.schema->message_name() == "rmq2pg.test.Reading");
    CHECK(p.columns[1].source.argument == "/device_id");
    CHECK_FALSE(p.columns[1].source.base64);
    CHECK(p.columns[2].source.argument == "/f_bytes");
    CHECK(p.columns[2].source.base64);
    CHECK(p.columns[3].source.argument == "/location/site");
    CHECK(p.columns[4].source.argument == "/samples/0/raw");
    CHECK(p.columns[4].source.base64);
}

TEST_CASE("protobuf config errors name the key and the value", "[protobuf]") {
    SECTION("a missing file") {
        auto problems = problems_of(pipeline_yaml("", "rmq2pg.test.Reading", "/nonexistent/x.pb"));
        CHECK_THAT(problems, Catch::Contains("pipelines[0].protobuf.descriptor_set") &&
                                 Catch::Contains("cannot read '/nonexistent/x.pb'"));
    }
    SECTION("a file that is not a descriptor set") {
        std::string path =
            std::string(RMQ2PG_SOURCE_DIR) + "/tests/fixtures/protobuf/readings.proto";
        auto problems = problems_of(pipeline_yaml("", "rmq2pg.test.Reading", path));
        CHECK_THAT(problems, Catch::Contains("pipelines[0].protobuf.descriptor_set") &&
                                 Catch::Contains("is not a FileDescriptorSet"));
    }
    SECTION("a message the set does not define") {
        auto problems = problems_of(pipeline_yaml("", "Reading"));
        CHECK_THAT(problems, Catch::Contains("pipelines[0].protobuf.message") &&
                                 Catch::Contains("'Reading' is not a message") &&
                                 Catch::Contains("rmq2pg.test.Reading"));
    }
    SECTION("a pointer that names no field") {
        auto problems =
            problems_of(pipeline_yaml("    columns: { id: /id, v: /location/sight }\n"));
        CHECK_THAT(problems, Catch::Contains("pipelines[0].columns.v") &&
                                 Catch::Contains("'sight' is no field of rmq2pg.test.Location"));
    }
    SECTION("a pointer into a scalar") {
        auto problems = problems_of(pipeline_yaml("    columns: { id: /id/x }\n"));
        CHECK_THAT(problems, Catch::Contains("pipelines[0].columns.id"));
    }
    SECTION("children from a field that is not repeated") {
        auto problems = problems_of(pipeline_yaml(
            "    mode: upsert\n    key: [id]\n    columns: { id: /id }\n    children:\n"
            "      - { table: s, from: /location, columns: { id: $parent.id, site: /site } }\n"));
        CHECK_THAT(problems,
                   Catch::Contains("children[0].from") && Catch::Contains("not a repeated field"));
    }
    SECTION("protobuf: without format: protobuf") {
        auto problems = problems_of(std::string(kHead) +
                                    "pipelines:\n  - name: r\n    queue: r\n    table: t\n"
                                    "    protobuf: { descriptor_set: x.pb, message: a.B }\n");
        CHECK_THAT(problems, Catch::Contains("pipelines[0].protobuf") &&
                                 Catch::Contains("applies only to format: protobuf"));
    }
    SECTION("format: protobuf without protobuf:") {
        auto problems = problems_of(std::string(kHead) +
                                    "pipelines:\n  - name: r\n    queue: r\n    table: t\n"
                                    "    format: protobuf\n");
        CHECK_THAT(problems, Catch::Contains("needs protobuf: { descriptor_set"));
    }
}

TEST_CASE("a protobuf body becomes its canonical JSON form, every type exact", "[protobuf]") {
    std::string location = len(1, "hall \"A\"") + zigzag(2, -3);
    std::string sample = vint(1, 7) + dbl(2, 0.1) + len(3, std::string("\x00\xff", 2));
    std::string body =
        vint(1, 42) + len(2, "dev-1") + dbl(3, std::numeric_limits<double>::quiet_NaN()) +
        flt(4, -std::numeric_limits<float>::infinity()) +
        vint(5, static_cast<std::uint64_t>(-2147483648LL)) + vint(6, 0x8000000000000000ULL) +
        vint(7, 4294967295U) + vint(8, 18446744073709551615ULL) + zigzag(9, -2147483648LL) +
        zigzag(10, std::numeric_limits<std::int64_t>::min()) + fixed32(11, 4294967295U) +
        fixed64(12, 18446744073709551615ULL) + fixed32(13, 0x80000000U) +
        fixed64(14, 0x7fffffffffffffffULL) + vint(15, 1) + len(16, "tab\there é") +
        len(17, std::string("\x00\x01\xfe\xff", 4)) + len(18, location) + len(19, sample) +
        len(19, "") + vint(20, 2) +
        // 1969-12-31T23:59:58.123456Z: seconds -2, nanos 123456000
        len(21, vint(1, static_cast<std::uint64_t>(-2LL)) + vint(2, 123456000));
    CHECK(json_of(body) ==
          R"({"id":"42","device_id":"dev-1","f_double":"NaN","f_float":"-Infinity",)"
          R"("f_int32":-2147483648,"f_int64":"-9223372036854775808","f_uint32":4294967295,)"
          R"("f_uint64":"18446744073709551615","f_sint32":-2147483648,)"
          R"("f_sint64":"-9223372036854775808","f_fixed32":4294967295,)"
          R"("f_fixed64":"18446744073709551615","f_sfixed32":-2147483648,)"
          R"("f_sfixed64":"9223372036854775807","f_bool":true,"f_string":"tab\there é",)"
          R"("f_bytes":"AAH+/w==","location":{"site":"hall \"A\"","floor":-3},)"
          R"("samples":[{"channel":7,"value":0.1,"raw":"AP8="},{"channel":0,"value":0,"raw":""}],)"
          R"("quality":"SUSPECT","taken_at":"1969-12-31T23:59:58.123456Z"})");
}

TEST_CASE(
    "fields without presence are written with their defaults, unset ones with presence are "
    "absent",
    "[protobuf]") {
    std::string json = json_of("");
    CHECK(json == R"({"id":"0","device_id":"","f_double":0,"f_float":0,"f_int32":0,"f_int64":"0",)"
                  R"("f_uint32":0,"f_uint64":"0","f_sint32":0,"f_sint64":"0","f_fixed32":0,)"
                  R"("f_fixed64":"0","f_sfixed32":0,"f_sfixed64":"0","f_bool":false,"f_string":"",)"
                  R"("f_bytes":"","samples":[],"quality":"QUALITY_UNSPECIFIED"})");
    CHECK_THAT(json_of(vint(22, 0)), Catch::EndsWith(R"("maybe":0})"));
    // An enum value the .proto does not name is its number.
    CHECK_THAT(json_of(vint(20, 9)), Catch::Contains(R"("quality":9)"));
}

TEST_CASE("a body that is not the message is poison with where and why it breaks", "[protobuf]") {
    SECTION("cut short inside a length-delimited field") {
        std::string body = vint(1, 1) + key(2, 2) + varint(50) + "abc";
        CHECK_THAT(reason_of(body),
                   Catch::Contains("not a valid rmq2pg.test.Reading protobuf message") &&
                       Catch::Contains("field 2 (device_id) at byte 2 declares 50 bytes, only 3 "
                                       "follow"));
    }
    SECTION("a huge declared length") {
        std::string body = key(17, 2) + varint(0xfffffff0ULL);
        CHECK_THAT(reason_of(body), Catch::Contains("field 17 (f_bytes)"));
    }
    SECTION("an invalid wire type") {
        CHECK_THAT(reason_of(key(3, 7) + "xxxx"), Catch::Contains("invalid wire type 7"));
    }
    SECTION("a broken nested message") {
        std::string body = len(18, key(1, 2) + varint(9) + "ab");
        CHECK_THAT(reason_of(body), Catch::Contains("in field 18 (location) at byte 0") &&
                                        Catch::Contains("field 1 (site)"));
    }
    SECTION("a JSON body sent by mistake") {
        CHECK_THAT(reason_of(R"({"id": 1})"), Catch::Contains("not a valid rmq2pg.test.Reading"));
    }
    SECTION("invalid UTF-8 in a string field") {
        CHECK_THAT(reason_of(len(16, "\xff\xfe")), Catch::Contains("UTF-8"));
    }
    SECTION("a Timestamp out of range") {
        CHECK_THAT(reason_of(len(21, vint(1, 300000000000ULL))),
                   Catch::Contains("Timestamp out of range"));
    }
    SECTION("garbage of every length never crashes") {
        std::string garbage;
        std::uint32_t x = 12345;
        for (int n = 0; n < 2000; ++n) {
            x = x * 1103515245 + 12345;
            garbage += static_cast<char>(x >> 24);
            ProtobufDecoder decoder(schema());
            std::string json;
            (void)decoder.to_json(garbage, json);
        }
        SUCCEED();
    }
}

TEST_CASE("base64 becomes bytea's hex input", "[protobuf]") {
    std::string out;
    CHECK(append_base64_bytea(out, "AAH+/w=="));
    CHECK(out == "\\x0001feff");
    out.clear();
    CHECK(append_base64_bytea(out, ""));
    CHECK(out == "\\x");
    out = "keep";
    CHECK_FALSE(append_base64_bytea(out, "a*b"));
    CHECK(out == "keep");
    CHECK_FALSE(append_base64_bytea(out, "A"));
    CHECK(out == "keep");
}

TEST_CASE("a protobuf message maps to its row and its children's rows", "[protobuf]") {
    Config c = load_config_text(
        pipeline_yaml("    mode: upsert\n    key: [id]\n"
                      "    columns: { id: /id, device: /deviceId, big: /f_uint64, raw: /f_bytes, "
                      "at: /takenAt, q: /quality }\n"
                      "    children:\n"
                      "      - table: samples\n        from: /samples\n"
                      "        columns: { id: $parent.id, n: $index, channel: /channel, raw: /raw "
                      "}\n"),
        "test.yaml");
    const PipelineConfig& p = c.pipelines.at(0);
    auto tables = table_targets(p);
    TableSchema readings{"public", "readings", {}, {"id"}};
    for (const char* name : {"id", "device", "big", "at", "q"})
        readings.columns.push_back({name, "text", TypeCategory::text, false});
    readings.columns.push_back({"raw", "bytea", TypeCategory::bytea, false});
    TableSchema samples{"public", "samples", {}, {}};
    for (const char* name : {"id", "n", "channel"})
        samples.columns.push_back({name, "text", TypeCategory::text, false});
    samples.columns.push_back({"raw", "bytea", TypeCategory::bytea, false});
    std::vector<const TableSchema*> schemas{&readings, &samples};
    AggregateMapper mapper(p, tables, 0, schemas);

    std::string body = vint(1, 9) + len(2, "d") + vint(8, 18446744073709551615ULL) +
                       len(17, std::string("\x00\xff", 2)) + vint(20, 1) +
                       len(21, vint(1, 1700000000) + vint(2, 500000000)) +
                       len(19, vint(1, 1) + len(3, "\x01")) + len(19, vint(1, 2));
    std::vector<std::string> rows(2);
    std::vector<std::size_t> counts(2, 0);
    Delivery d;
    d.body = body;
    auto error = mapper.append(d, body, 0, rows, counts);
    REQUIRE_FALSE(error);
    CHECK(rows[0] == "9\td\t18446744073709551615\t\\\\x00ff\t2023-11-14T22:13:20.500Z\tGOOD\t0");
    CHECK(rows[1] == "9\t0\t1\t\\\\x01\t0\n9\t1\t2\t\\\\x\t0");

    SECTION("a body that does not parse is the message's reason") {
        std::string bad = key(2, 2) + varint(99);
        auto reason = mapper.append(d, bad, 1, rows, counts);
        REQUIRE(reason);
        CHECK_THAT(*reason, Catch::Contains("field 2 (device_id) at byte 0 declares 99 bytes"));
    }
}
