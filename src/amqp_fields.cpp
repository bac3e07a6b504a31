// AMQP field tables in and out: header values for the mapping (nested values as JSON), config
// arguments as tables, a dead letter's headers.
#include "amqp_fields.h"

#include <charconv>
#include <cstring>
#include <new>

#include "amqp_internal.h"
#include "json_escape.h"

namespace rmq2pg {
namespace {

void append_number(std::string& out, double value) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, ec == std::errc() ? end : buf);
}

void append_field_json(std::string& out, const amqp_field_value_t& v) {
    HeaderValue h = convert_field(v);
    switch (h.kind) {
        case HeaderValue::Kind::text:
            append_json_string(out, h.text);
            break;
        default:
            out += h.text.empty() ? "null" : h.text;
    }
}

}  // namespace

HeaderValue convert_field(const amqp_field_value_t& v) {
    using K = HeaderValue::Kind;
    switch (v.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return {K::text, std::string(as_view(v.value.bytes))};
        case AMQP_FIELD_KIND_BOOLEAN:
            return {K::boolean, v.value.boolean ? "true" : "false"};
        case AMQP_FIELD_KIND_I8:
            return {K::number, std::to_string(v.value.i8)};
        case AMQP_FIELD_KIND_U8:
            return {K::number, std::to_string(v.value.u8)};
        case AMQP_FIELD_KIND_I16:
            return {K::number, std::to_string(v.value.i16)};
        case AMQP_FIELD_KIND_U16:
            return {K::number, std::to_string(v.value.u16)};
        case AMQP_FIELD_KIND_I32:
            return {K::number, std::to_string(v.value.i32)};
        case AMQP_FIELD_KIND_U32:
            return {K::number, std::to_string(v.value.u32)};
        case AMQP_FIELD_KIND_I64:
            return {K::number, std::to_string(v.value.i64)};
        case AMQP_FIELD_KIND_U64:
            return {K::number, std::to_string(v.value.u64)};
        case AMQP_FIELD_KIND_TIMESTAMP:
            return {K::timestamp, std::to_string(v.value.u64)};
        case AMQP_FIELD_KIND_F32: {
            std::string s;
            append_number(s, v.value.f32);
            return {K::number, s};
        }
        case AMQP_FIELD_KIND_F64: {
            std::string s;
            append_number(s, v.value.f64);
            return {K::number, s};
        }
        case AMQP_FIELD_KIND_DECIMAL: {
            // value × 10^-decimals, written exactly (rabbitmq-c keeps the value unsigned).
            std::string digits = std::to_string(v.value.decimal.value);
            unsigned places = v.value.decimal.decimals;
            if (places > 0) {
                if (digits.size() <= places)
                    digits.insert(0, places + 1 - digits.size(), '0');
                digits.insert(digits.size() - places, ".");
            }
            return {K::number, digits};
        }
        case AMQP_FIELD_KIND_TABLE: {
            std::string out = "{";
            for (int i = 0; i < v.value.table.num_entries; ++i) {
                if (i > 0)
                    out += ',';
                append_json_string(out, as_view(v.value.table.entries[i].key));
                out += ':';
                append_field_json(out, v.value.table.entries[i].value);
            }
            return {K::json, out + "}"};
        }
        case AMQP_FIELD_KIND_ARRAY: {
            std::string out = "[";
            for (int i = 0; i < v.value.array.num_entries; ++i) {
                if (i > 0)
                    out += ',';
                append_field_json(out, v.value.array.entries[i]);
            }
            return {K::json, out + "]"};
        }
        case AMQP_FIELD_KIND_VOID:
        default:
            return {K::json, ""};
    }
}

std::optional<HeaderValue> find_header_in_table(const void* headers, std::string_view name) {
    const auto* table = static_cast<const amqp_table_t*>(headers);
    for (int i = 0; i < table->num_entries; ++i) {
        if (as_view(table->entries[i].key) != name)
            continue;
        if (table->entries[i].value.kind == AMQP_FIELD_KIND_VOID)
            return std::nullopt;
        return convert_field(table->entries[i].value);
    }
    return std::nullopt;
}

amqp_table_t to_table(const std::vector<AmqpArgument>& arguments,
                      std::vector<amqp_table_entry_t>& entries) {
    entries.clear();
    for (const auto& argument : arguments) {
        amqp_table_entry_t entry{};
        entry.key = as_bytes(argument.name);
        switch (argument.type) {
            case AmqpArgument::Type::integer:
                entry.value.kind = AMQP_FIELD_KIND_I64;
                entry.value.value.i64 = argument.integer;
                break;
            case AmqpArgument::Type::boolean:
                entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
                entry.value.value.boolean = argument.boolean ? 1 : 0;
                break;
            case AmqpArgument::Type::string:
                entry.value.kind = AMQP_FIELD_KIND_UTF8;
                entry.value.value.bytes = as_bytes(argument.text);
                break;
        }
        entries.push_back(entry);
    }
    return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

amqp_basic_properties_t with_headers(amqp_basic_properties_t properties,
                                     const amqp_table_t* original,
                                     const std::vector<std::pair<std::string, std::string>>& extra,
                                     std::vector<amqp_table_entry_t>& entries) {
    entries.clear();
    if (original != nullptr) {
        for (int i = 0; i < original->num_entries; ++i) {
            std::string_view key = as_view(original->entries[i].key);
            bool replaced = false;
            for (const auto& [name, value] : extra)
                replaced = replaced || key == name;
            if (!replaced)
                entries.push_back(original->entries[i]);
        }
    }
    for (const auto& [name, value] : extra) {
        amqp_table_entry_t entry{};
        entry.key = as_bytes(name);
        entry.value.kind = AMQP_FIELD_KIND_UTF8;
        entry.value.value.bytes = as_bytes(value);
        entries.push_back(entry);
    }
    if (!entries.empty()) {
        properties._flags |= AMQP_BASIC_HEADERS_FLAG;
        properties.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
    }
    if (!(properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)) {
        properties._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    return properties;
}

std::vector<std::pair<std::string, std::string>> delivery_headers(const Delivery& delivery) {
    std::vector<std::pair<std::string, std::string>> out;
    const amqp_basic_properties_t* properties = delivery_properties(delivery);
    if (properties == nullptr || !(properties->_flags & AMQP_BASIC_HEADERS_FLAG))
        return out;
    const amqp_table_t& table = properties->headers;
    for (int i = 0; i < table.num_entries; ++i)
        out.emplace_back(std::string(as_view(table.entries[i].key)),
                         convert_field(table.entries[i].value).text);
    return out;
}

namespace {

// Every piece of a copied table starts at this alignment (that of its entries and values).
std::size_t aligned(std::size_t n) {
    constexpr std::size_t a = alignof(std::max_align_t);
    return (n + a - 1) / a * a;
}

std::size_t copy_size(const amqp_table_t& table);

std::size_t copy_size(const amqp_field_value_t& value) {
    switch (value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return aligned(value.value.bytes.len);
        case AMQP_FIELD_KIND_TABLE:
            return copy_size(value.value.table);
        case AMQP_FIELD_KIND_ARRAY: {
            const amqp_array_t& array = value.value.array;
            std::size_t size = aligned(sizeof(amqp_field_value_t) * array.num_entries);
            for (int i = 0; i < array.num_entries; ++i)
                size += copy_size(array.entries[i]);
            return size;
        }
        default:  // held in the value itself
            return 0;
    }
}

std::size_t copy_size(const amqp_table_t& table) {
    std::size_t size = aligned(sizeof(amqp_table_entry_t) * table.num_entries);
    for (int i = 0; i < table.num_entries; ++i)
        size += aligned(table.entries[i].key.len) + copy_size(table.entries[i].value);
    return size;
}

// Hands out the block's pieces in order; copy_size() sized the block for exactly these.
struct BlockCursor {
    char* next;
    void* take(std::size_t n) {
        void* piece = next;
        next += aligned(n);
        return piece;
    }
};

amqp_bytes_t copy_bytes(amqp_bytes_t bytes, BlockCursor& cursor) {
    if (bytes.len == 0)
        return amqp_bytes_t{0, nullptr};
    void* to = cursor.take(bytes.len);
    std::memcpy(to, bytes.bytes, bytes.len);
    return amqp_bytes_t{bytes.len, to};
}

amqp_table_t copy_table(const amqp_table_t& table, BlockCursor& cursor);

amqp_field_value_t copy_value(const amqp_field_value_t& value, BlockCursor& cursor) {
    amqp_field_value_t copy = value;
    switch (value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            copy.value.bytes = copy_bytes(value.value.bytes, cursor);
            break;
        case AMQP_FIELD_KIND_TABLE:
            copy.value.table = copy_table(value.value.table, cursor);
            break;
        case AMQP_FIELD_KIND_ARRAY: {
            const amqp_array_t& array = value.value.array;
            copy.value.array.entries = nullptr;
            if (array.num_entries <= 0)
                break;
            auto* entries = static_cast<amqp_field_value_t*>(
                cursor.take(sizeof(amqp_field_value_t) * array.num_entries));
            for (int i = 0; i < array.num_entries; ++i)
                new (&entries[i]) amqp_field_value_t(copy_value(array.entries[i], cursor));
            copy.value.array.entries = entries;
            break;
        }
        default:
            break;
    }
    return copy;
}

amqp_table_t copy_table(const amqp_table_t& table, BlockCursor& cursor) {
    amqp_table_t copy{table.num_entries, nullptr};
    if (table.num_entries <= 0)
        return copy;
    auto* entries = static_cast<amqp_table_entry_t*>(
        cursor.take(sizeof(amqp_table_entry_t) * table.num_entries));
    for (int i = 0; i < table.num_entries; ++i) {
        new (&entries[i]) amqp_table_entry_t{};
        entries[i].key = copy_bytes(table.entries[i].key, cursor);
        entries[i].value = copy_value(table.entries[i].value, cursor);
    }
    copy.entries = entries;
    return copy;
}

}  // namespace

amqp_table_t copy_table(const amqp_table_t& table, std::unique_ptr<std::max_align_t[]>& block) {
    std::size_t size = copy_size(table);
    constexpr std::size_t unit = sizeof(std::max_align_t);
    block.reset(size == 0 ? nullptr : new std::max_align_t[(size + unit - 1) / unit]);
    BlockCursor cursor{reinterpret_cast<char*>(block.get())};
    return copy_table(table, cursor);
}

}  // namespace rmq2pg
