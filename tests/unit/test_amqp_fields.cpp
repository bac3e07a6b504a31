// AMQP field tables without a broker: header values as the mapping reads them, nested values as
// JSON, config arguments as tables, a dead letter's headers.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "amqp_fields.h"

using rmq2pg::HeaderValue;
using K = HeaderValue::Kind;

namespace {

amqp_bytes_t bytes(const char* text) {
    return amqp_bytes_t{std::strlen(text), const_cast<char*>(text)};
}

amqp_field_value_t utf8(const char* text) {
    amqp_field_value_t v{};
    v.kind = AMQP_FIELD_KIND_UTF8;
    v.value.bytes = bytes(text);
    return v;
}

amqp_field_value_t field(std::uint8_t kind) {
    amqp_field_value_t v{};
    v.kind = kind;
    return v;
}

amqp_table_entry_t entry(const char* key, amqp_field_value_t value) {
    amqp_table_entry_t e{};
    e.key = bytes(key);
    e.value = value;
    return e;
}

std::string key_of(const amqp_table_entry_t& e) {
    return std::string(static_cast<const char*>(e.key.bytes), e.key.len);
}

std::string text_of(const amqp_table_entry_t& e) {
    return std::string(static_cast<const char*>(e.value.value.bytes.bytes),
                       e.value.value.bytes.len);
}

}  // namespace

TEST_CASE("scalar header fields become text of the kind the mapping reads", "[amqp][fields]") {
    auto check = [](const amqp_field_value_t& v, K kind, const std::string& text) {
        HeaderValue h = rmq2pg::convert_field(v);
        CHECK(h.kind == kind);
        CHECK(h.text == text);
    };
    check(utf8("acme\tinc"), K::text, "acme\tinc");
    amqp_field_value_t v = field(AMQP_FIELD_KIND_BYTES);
    v.value.bytes = bytes("raw");
    check(v, K::text, "raw");
    v = field(AMQP_FIELD_KIND_BOOLEAN);
    v.value.boolean = 1;
    check(v, K::boolean, "true");
    v.value.boolean = 0;
    check(v, K::boolean, "false");
    v = field(AMQP_FIELD_KIND_I8);
    v.value.i8 = -8;
    check(v, K::number, "-8");
    v = field(AMQP_FIELD_KIND_U16);
    v.value.u16 = 65535;
    check(v, K::number, "65535");
    v = field(AMQP_FIELD_KIND_I32);
    v.value.i32 = -2147483647 - 1;
    check(v, K::number, "-2147483648");
    v = field(AMQP_FIELD_KIND_I64);
    v.value.i64 = -9007199254740993;  // beyond a double's exact integers: the digits survive
    check(v, K::number, "-9007199254740993");
    v = field(AMQP_FIELD_KIND_U64);
    v.value.u64 = 18446744073709551615u;
    check(v, K::number, "18446744073709551615");
    v = field(AMQP_FIELD_KIND_TIMESTAMP);
    v.value.u64 = 1700000000;
    check(v, K::timestamp, "1700000000");
    v = field(AMQP_FIELD_KIND_F32);
    v.value.f32 = 1.5f;
    check(v, K::number, "1.5");
    v = field(AMQP_FIELD_KIND_F64);
    v.value.f64 = 0.1;  // the shortest text that reads back as the same double
    check(v, K::number, "0.1");
}

TEST_CASE("a decimal header is written exactly, with its scale", "[amqp][fields]") {
    amqp_field_value_t v = field(AMQP_FIELD_KIND_DECIMAL);
    v.value.decimal.value = 12345;
    v.value.decimal.decimals = 2;
    CHECK(rmq2pg::convert_field(v).text == "123.45");
    v.value.decimal.value = 5;
    v.value.decimal.decimals = 3;
    CHECK(rmq2pg::convert_field(v).text == "0.005");
    v.value.decimal.decimals = 0;
    CHECK(rmq2pg::convert_field(v).text == "5");
    CHECK(rmq2pg::convert_field(v).kind == K::number);
}

TEST_CASE("nested tables and arrays become JSON, void becomes null", "[amqp][fields]") {
    amqp_field_value_t flag = field(AMQP_FIELD_KIND_BOOLEAN);
    flag.value.boolean = 1;
    amqp_field_value_t list_items[] = {flag, utf8("s"), field(AMQP_FIELD_KIND_VOID)};
    amqp_field_value_t list = field(AMQP_FIELD_KIND_ARRAY);
    list.value.array = amqp_array_t{3, list_items};
    amqp_field_value_t count = field(AMQP_FIELD_KIND_I32);
    count.value.i32 = 42;
    amqp_table_entry_t entries[] = {entry("quote\"d", utf8("line\nbreak")), entry("n", count),
                                    entry("v", field(AMQP_FIELD_KIND_VOID)), entry("l", list)};
    amqp_field_value_t table = field(AMQP_FIELD_KIND_TABLE);
    table.value.table = amqp_table_t{4, entries};

    HeaderValue h = rmq2pg::convert_field(table);
    CHECK(h.kind == K::json);
    CHECK(h.text == R"({"quote\"d":"line\nbreak","n":42,"v":null,"l":[true,"s",null]})");

    amqp_field_value_t empty = field(AMQP_FIELD_KIND_ARRAY);
    empty.value.array = amqp_array_t{0, nullptr};
    CHECK(rmq2pg::convert_field(empty).text == "[]");
    // A void header on its own is "no value": json with empty text.
    HeaderValue none = rmq2pg::convert_field(field(AMQP_FIELD_KIND_VOID));
    CHECK(none.kind == K::json);
    CHECK(none.text.empty());
}

TEST_CASE("a header is looked up by exact name; a void one counts as missing", "[amqp][fields]") {
    amqp_table_entry_t entries[] = {entry("x-tenant", utf8("acme")),
                                    entry("x-tenant", utf8("second")),
                                    entry("x-none", field(AMQP_FIELD_KIND_VOID))};
    amqp_table_t table{3, entries};
    auto tenant = rmq2pg::find_header_in_table(&table, "x-tenant");
    REQUIRE(tenant);
    CHECK(tenant->text == "acme");  // the first of two
    CHECK_FALSE(rmq2pg::find_header_in_table(&table, "x-none"));
    CHECK_FALSE(rmq2pg::find_header_in_table(&table, "X-Tenant"));
    CHECK_FALSE(rmq2pg::find_header_in_table(&table, "x-tenan"));
}

TEST_CASE("config arguments keep their YAML type in the field table", "[amqp][fields]") {
    std::vector<rmq2pg::AmqpArgument> arguments(3);
    arguments[0].name = "x-max-length";
    arguments[0].type = rmq2pg::AmqpArgument::Type::integer;
    arguments[0].integer = 1000;
    arguments[1].name = "x-single-active-consumer";
    arguments[1].type = rmq2pg::AmqpArgument::Type::boolean;
    arguments[1].boolean = true;
    arguments[2].name = "x-queue-type";
    arguments[2].text = "quorum";
    std::vector<amqp_table_entry_t> entries;
    amqp_table_t table = rmq2pg::to_table(arguments, entries);
    REQUIRE(table.num_entries == 3);
    CHECK(key_of(table.entries[0]) == "x-max-length");
    CHECK(table.entries[0].value.kind == AMQP_FIELD_KIND_I64);
    CHECK(table.entries[0].value.value.i64 == 1000);
    CHECK(table.entries[1].value.kind == AMQP_FIELD_KIND_BOOLEAN);
    CHECK(table.entries[1].value.value.boolean == 1);
    CHECK(table.entries[2].value.kind == AMQP_FIELD_KIND_UTF8);
    CHECK(text_of(table.entries[2]) == "quorum");
}

TEST_CASE("a dead letter keeps its original headers, but only the latest reason",
          "[amqp][fields]") {
    amqp_table_entry_t original_entries[] = {entry("x-tenant", utf8("acme")),
                                             entry("x-rmq2pg-error", utf8("old reason"))};
    amqp_table_t original{2, original_entries};
    std::vector<std::pair<std::string, std::string>> extra = {{"x-rmq2pg-error", "new reason"},
                                                              {"x-rmq2pg-pipeline", "orders"}};
    std::vector<amqp_table_entry_t> entries;
    amqp_basic_properties_t properties{};
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.delivery_mode = 1;  // transient, as the publisher chose: kept
    amqp_basic_properties_t out = rmq2pg::with_headers(properties, &original, extra, entries);
    REQUIRE((out._flags & AMQP_BASIC_HEADERS_FLAG) != 0);
    REQUIRE(out.headers.num_entries == 3);
    CHECK(key_of(out.headers.entries[0]) == "x-tenant");
    CHECK(key_of(out.headers.entries[1]) == "x-rmq2pg-error");
    CHECK(text_of(out.headers.entries[1]) == "new reason");
    CHECK(key_of(out.headers.entries[2]) == "x-rmq2pg-pipeline");
    CHECK(out.delivery_mode == 1);

    SECTION("a message without a delivery mode becomes persistent; no headers, no table") {
        amqp_basic_properties_t bare{};
        amqp_basic_properties_t result = rmq2pg::with_headers(bare, nullptr, {}, entries);
        CHECK((result._flags & AMQP_BASIC_HEADERS_FLAG) == 0);
        CHECK((result._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0);
        CHECK(result.delivery_mode == AMQP_DELIVERY_PERSISTENT);
    }
}

TEST_CASE("copy_table copies every kind of field into its own block, nested ones too") {
    std::vector<amqp_table_entry_t> inner{entry("x-stream-offset", field(AMQP_FIELD_KIND_I64)),
                                          entry("empty", utf8(""))};
    inner[0].value.value.i64 = -9007199254740993LL;
    std::vector<amqp_field_value_t> array{utf8("first"), field(AMQP_FIELD_KIND_VOID),
                                          field(AMQP_FIELD_KIND_F64)};
    array[2].value.f64 = 2.5;
    amqp_field_value_t nested = field(AMQP_FIELD_KIND_TABLE);
    nested.value.table = amqp_table_t{static_cast<int>(inner.size()), inner.data()};
    array.push_back(nested);
    amqp_field_value_t listed = field(AMQP_FIELD_KIND_ARRAY);
    listed.value.array = amqp_array_t{static_cast<int>(array.size()), array.data()};
    amqp_field_value_t raw = field(AMQP_FIELD_KIND_BYTES);
    raw.value.bytes = amqp_bytes_t{3, const_cast<char*>("\0\xff\x01")};
    amqp_field_value_t decimal = field(AMQP_FIELD_KIND_DECIMAL);
    decimal.value.decimal = amqp_decimal_t{2, 12345};
    amqp_field_value_t empty_array = field(AMQP_FIELD_KIND_ARRAY);
    std::vector<amqp_table_entry_t> entries{entry("x-death", listed),
                                            entry("raw", raw),
                                            entry("price", decimal),
                                            entry("nested", nested),
                                            entry("text", utf8("é")),
                                            entry("none", empty_array),
                                            entry("", field(AMQP_FIELD_KIND_BOOLEAN))};
    amqp_table_t original{static_cast<int>(entries.size()), entries.data()};

    // The wire form of both tables is the same, and the copy lives in its block only.
    auto encoded = [](amqp_table_t table) {
        std::string wire(4096, '\0');
        amqp_bytes_t buffer{wire.size(), wire.data()};
        std::size_t offset = 0;
        REQUIRE(amqp_encode_table(buffer, &table, &offset) == AMQP_STATUS_OK);
        wire.resize(offset);
        return wire;
    };
    std::unique_ptr<std::max_align_t[]> block;
    amqp_table_t copy = rmq2pg::copy_table(original, block);
    std::string expected = encoded(original);
    CHECK(encoded(copy) == expected);
    const char* begin = reinterpret_cast<const char*>(block.get());
    auto inside = [&](const void* p) {
        const char* c = static_cast<const char*>(p);
        return c >= begin && c < begin + expected.size() * 8;
    };
    CHECK(inside(copy.entries));
    CHECK(inside(copy.entries[0].key.bytes));
    CHECK(inside(copy.entries[0].value.value.array.entries));
    CHECK(inside(copy.entries[0].value.value.array.entries[3].value.table.entries));
    CHECK(inside(copy.entries[1].value.value.bytes.bytes));
    // Changing the original (a string, a nested table's value, an array) leaves the copy as it was.
    std::string scratch = "FIRST";
    array[0].value.bytes = amqp_bytes_t{scratch.size(), scratch.data()};
    inner[0].value.value.i64 = 0;
    array[2].value.f64 = -1;
    REQUIRE(encoded(original) != expected);
    CHECK(encoded(copy) == expected);

    std::unique_ptr<std::max_align_t[]> none;
    amqp_table_t empty = rmq2pg::copy_table(amqp_table_t{0, nullptr}, none);
    CHECK(empty.num_entries == 0);
    CHECK(none == nullptr);
}
