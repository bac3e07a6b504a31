// A protobuf body → its canonical JSON form in one pass over the wire format; see
// protobuf_decoder.h.
//
// Design: no DynamicMessage and no reflection per message. Each message type gets a table built
// once per decoder from its descriptor (field number → index, kind, quoted JSON key, enum names,
// well-known type). A message is converted in two steps over its bytes: `scan` walks the wire
// format once and records, per declared field, where its values are (the last one for a
// singular scalar, every one in wire order for a repeated field or a singular message, whose
// occurrences merge as libprotobuf merges them); `emit` then writes the fields in declaration
// order, as the reflection printer did, descending into nested messages by scanning their bytes
// in turn. Occurrences live in one vector reused across messages and each message's slots in a
// stack of indices, so a message costs no allocation once the buffers have grown. Every read is
// bounded by its enclosing length and nesting by kMaxDepth: any input ends in JSON or a reason.
// What libprotobuf's parser does is kept: a value whose wire type does not match its field is an
// unknown field (skipped), packed and unpacked repeated values mix, a oneof keeps its last
// member, proto3 strings must be UTF-8, a closed (proto2) enum drops numbers it does not name,
// a required field missing makes the message invalid, a oneof member replaced by a later one
// must still parse. tests/unit/test_protobuf_differential.cpp proves the output equal to
// the reflection printer's on random, merged and mutated messages.
#include "protobuf_decoder.h"

#include <google/protobuf/descriptor.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "civil_date.h"
#include "json_escape.h"

namespace rmq2pg {

namespace gp = google::protobuf;
using Field = gp::FieldDescriptor;

namespace {

constexpr int kMaxDepth = 100;  // libprotobuf's own default recursion limit

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, std::string_view bytes) {
    out += '"';
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        char four[4] = {kBase64[(v >> 18) & 63], kBase64[(v >> 12) & 63], kBase64[(v >> 6) & 63],
                        kBase64[v & 63]};
        out.append(four, 4);
    }
    if (bytes.size() - i == 1) {
        unsigned v = byte(i) << 16;
        out += kBase64[(v >> 18) & 63];
        out += kBase64[(v >> 12) & 63];
        out += "==";
    } else if (bytes.size() - i == 2) {
        unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
        out += kBase64[(v >> 18) & 63];
        out += kBase64[(v >> 12) & 63];
        out += kBase64[(v >> 6) & 63];
        out += '=';
    }
    out += '"';
}

// A JSON string of bytes that need no escaping is copied whole; the rest goes through
// json_escape.h's escaper, as the reflection printer did.
void append_string(std::string& out, std::string_view text) {
    for (char c : text) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
            append_json_string(out, text);
            return;
        }
    }
    out += '"';
    out += text;
    out += '"';
}

template <typename Float>
void append_float(std::string& out, Float value) {
    if (std::isnan(value)) {
        out += "\"NaN\"";
    } else if (std::isinf(value)) {
        out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    } else {
        char buf[64];
        // Shortest text that reads back as the same float or double.
        auto result = std::to_chars(buf, buf + sizeof buf, value);
        out.append(buf, result.ptr);
    }
}

template <typename Int>
void append_int(std::string& out, Int value, bool quoted) {
    char buf[32];
    char* at = buf;
    if (quoted)
        *at++ = '"';
    at = std::to_chars(at, buf + sizeof buf - 1, value).ptr;
    if (quoted)
        *at++ = '"';
    out.append(buf, at);
}

// ".123", ".123456" or ".123456789" (as few groups of three as the value needs), or nothing.
void append_nanos(std::string& out, std::int32_t nanos) {
    if (nanos == 0)
        return;
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%09d", nanos);
    std::size_t digits = nanos % 1000000 == 0 ? 3 : nanos % 1000 == 0 ? 6 : 9;
    out.append(buf, 1 + digits);
}

// Structurally valid UTF-8 as libprotobuf checks it: no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool valid_utf8(const unsigned char* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        // Eight ASCII bytes at a time: most text is.
        if (i + 8 <= n) {
            std::uint64_t word;
            std::memcpy(&word, s + i, 8);
            if ((word & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (n - i <= need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (std::size_t k = 2; k <= need; ++k)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

// Field numbers of the well-known types (google/protobuf/*.proto).
constexpr int kSeconds = 1, kNanos = 2, kWrapperValue = 1, kAnyTypeUrl = 1, kAnyValue = 2;

enum class Kind : std::uint8_t {
    int32,
    int64,
    uint32,
    uint64,
    sint32,
    sint64,
    fixed32,
    fixed64,
    sfixed32,
    sfixed64,
    boolean,
    float32,
    float64,
    string,
    bytes,
    enumeration,
    message,
    group
};

enum class WellKnown : std::uint8_t {
    none,
    timestamp,
    duration,
    wrapper,
    field_mask,
    struct_object,
    list_value,
    value,
    empty,
    any
};

struct EnumTable {
    bool null_value = false;  // google.protobuf.NullValue: always JSON's null
    bool closed = false;      // proto2: a number it does not name is an unknown field
    int min = 0;
    std::vector<std::string> dense;  // quoted names by number - min; "" for unnamed numbers
    std::unordered_map<int, std::string> sparse;

    const std::string* name(std::int32_t number) const {
        if (!dense.empty()) {
            const std::int64_t at = static_cast<std::int64_t>(number) - min;
            if (at < 0 || at >= static_cast<std::int64_t>(dense.size()) || dense[at].empty())
                return nullptr;
            return &dense[static_cast<std::size_t>(at)];
        }
        auto it = sparse.find(number);
        return it == sparse.end() ? nullptr : &it->second;
    }
};

struct MessageTable;

struct FieldInfo {
    const Field* descriptor = nullptr;
    std::string key;           // "\"name\":"
    std::string what;          // "field 3 (name)", for reasons
    std::string default_json;  // a scalar's value when it is absent
    int number = 0;
    Kind kind = Kind::int32;
    std::uint8_t wire = 0;  // the wire type of one value
    bool repeated = false;
    bool packable = false;
    bool presence = false;
    bool map = false;
    bool utf8 = false;  // proto3 string: invalid UTF-8 makes the message invalid
    bool required = false;
    int oneof = -1;
    const EnumTable* enumeration = nullptr;
    MessageTable* message = nullptr;  // resolved at first use: types may be recursive
};

struct MessageTable {
    const gp::Descriptor* descriptor = nullptr;
    WellKnown well_known = WellKnown::none;
    std::vector<FieldInfo> fields;          // declaration order: the order they are written
    std::vector<std::int32_t> dense_index;  // field number → index + 1, numbers below 256
    std::unordered_map<int, int> sparse_index;
    int oneofs = 0;
    bool has_required = false;

    int find(int number) const {
        if (number < static_cast<int>(dense_index.size()))
            return dense_index[number] - 1;
        auto it = sparse_index.find(number);
        return it == sparse_index.end() ? -1 : it->second;
    }
};

Kind kind_of(const Field* f) {
    switch (f->type()) {
        case Field::TYPE_INT32:
            return Kind::int32;
        case Field::TYPE_INT64:
            return Kind::int64;
        case Field::TYPE_UINT32:
            return Kind::uint32;
        case Field::TYPE_UINT64:
            return Kind::uint64;
        case Field::TYPE_SINT32:
            return Kind::sint32;
        case Field::TYPE_SINT64:
            return Kind::sint64;
        case Field::TYPE_FIXED32:
            return Kind::fixed32;
        case Field::TYPE_FIXED64:
            return Kind::fixed64;
        case Field::TYPE_SFIXED32:
            return Kind::sfixed32;
        case Field::TYPE_SFIXED64:
            return Kind::sfixed64;
        case Field::TYPE_BOOL:
            return Kind::boolean;
        case Field::TYPE_FLOAT:
            return Kind::float32;
        case Field::TYPE_DOUBLE:
            return Kind::float64;
        case Field::TYPE_STRING:
            return Kind::string;
        case Field::TYPE_BYTES:
            return Kind::bytes;
        case Field::TYPE_ENUM:
            return Kind::enumeration;
        case Field::TYPE_GROUP:
            return Kind::group;
        case Field::TYPE_MESSAGE:
            return Kind::message;
    }
    return Kind::bytes;
}

std::uint8_t wire_of(Kind kind) {
    switch (kind) {
        case Kind::fixed64:
        case Kind::sfixed64:
        case Kind::float64:
            return 1;
        case Kind::fixed32:
        case Kind::sfixed32:
        case Kind::float32:
            return 5;
        case Kind::string:
        case Kind::bytes:
        case Kind::message:
            return 2;
        case Kind::group:
            return 3;
        default:
            return 0;
    }
}

WellKnown well_known_of(const std::string& name) {
    if (name.rfind("google.protobuf.", 0) != 0)
        return WellKnown::none;
    if (name == "google.protobuf.Timestamp")
        return WellKnown::timestamp;
    if (name == "google.protobuf.Duration")
        return WellKnown::duration;
    if (name == "google.protobuf.DoubleValue" || name == "google.protobuf.FloatValue" ||
        name == "google.protobuf.Int64Value" || name == "google.protobuf.UInt64Value" ||
        name == "google.protobuf.Int32Value" || name == "google.protobuf.UInt32Value" ||
        name == "google.protobuf.BoolValue" || name == "google.protobuf.StringValue" ||
        name == "google.protobuf.BytesValue")
        return WellKnown::wrapper;
    if (name == "google.protobuf.FieldMask")
        return WellKnown::field_mask;
    if (name == "google.protobuf.Struct")
        return WellKnown::struct_object;
    if (name == "google.protobuf.ListValue")
        return WellKnown::list_value;
    if (name == "google.protobuf.Value")
        return WellKnown::value;
    if (name == "google.protobuf.Empty")
        return WellKnown::empty;
    if (name == "google.protobuf.Any")
        return WellKnown::any;
    return WellKnown::none;
}

// Where a value is in the body: a varint or fixed value itself, or the span of a
// length-delimited value or a group's content. `next` chains a field's occurrences.
struct Occurrence {
    std::uint64_t value;
    std::uint32_t begin;
    std::uint32_t end;
    std::uint32_t tag_at;  // byte offset of the field's tag, for reasons
    std::int32_t next;
    std::uint8_t wire;
};

std::int32_t zigzag32(std::uint64_t v) {
    const auto u = static_cast<std::uint32_t>(v);
    return static_cast<std::int32_t>((u >> 1) ^ (~(u & 1) + 1));
}
std::int64_t zigzag64(std::uint64_t v) {
    return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
}
float float_of(std::uint64_t bits) {
    const auto b = static_cast<std::uint32_t>(bits);
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}
double double_of(std::uint64_t bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

}  // namespace

struct ProtobufDecoder::Impl {
    std::shared_ptr<const ProtobufSchema> schema;
    std::unordered_map<const gp::Descriptor*, std::unique_ptr<MessageTable>> tables;
    std::unordered_map<const gp::EnumDescriptor*, std::unique_ptr<EnumTable>> enums;

    // One conversion's state.
    const unsigned char* data = nullptr;
    std::string* out = nullptr;
    std::vector<Occurrence> occurrences;
    // Per message being converted (a stack): its fields' first and last occurrence, then its
    // oneofs' current member.
    std::vector<std::int32_t> slots;
    std::string error;
    // Message-typed oneof members a later member replaced: their bytes are still checked, as
    // libprotobuf parses them (a stack, like `slots`).
    std::vector<std::pair<FieldInfo*, std::int32_t>> replaced;
    bool parse_error = false;  // the body is not the message (else: it has no JSON form)

    // ---- tables, built at first use ----

    const EnumTable* enum_table(const gp::EnumDescriptor* e) {
        auto& slot = enums[e];
        if (slot)
            return slot.get();
        slot = std::make_unique<EnumTable>();
        EnumTable& t = *slot;
        t.null_value = e->full_name() == "google.protobuf.NullValue";
        t.closed = e->file()->syntax() != gp::FileDescriptor::SYNTAX_PROTO3;
        int lo = INT_MAX, hi = INT_MIN;
        for (int i = 0; i < e->value_count(); ++i) {
            lo = std::min(lo, e->value(i)->number());
            hi = std::max(hi, e->value(i)->number());
        }
        const bool dense = e->value_count() > 0 && static_cast<std::int64_t>(hi) - lo < 1024;
        if (dense) {
            t.min = lo;
            t.dense.resize(static_cast<std::size_t>(hi - lo + 1));
        }
        // The first value declared for a number names it (aliases), as FindValueByNumber does.
        for (int i = e->value_count() - 1; i >= 0; --i) {
            std::string quoted = json_string(e->value(i)->name());
            if (dense)
                t.dense[static_cast<std::size_t>(e->value(i)->number() - lo)] = quoted;
            else
                t.sparse[e->value(i)->number()] = quoted;
        }
        return &t;
    }

    MessageTable* table(const gp::Descriptor* d) {
        auto& slot = tables[d];
        if (slot)
            return slot.get();
        slot = std::make_unique<MessageTable>();
        MessageTable& t = *slot;
        t.descriptor = d;
        t.well_known = well_known_of(d->full_name());
        t.oneofs = d->oneof_decl_count();
        for (int i = 0; i < d->field_count(); ++i) {
            const Field* fd = d->field(i);
            FieldInfo f;
            f.descriptor = fd;
            f.key = json_string(fd->name()) + ":";
            f.what = "field " + std::to_string(fd->number()) + " (" + fd->name() + ")";
            f.number = fd->number();
            f.kind = kind_of(fd);
            f.wire = wire_of(f.kind);
            f.repeated = fd->is_repeated();
            f.packable = fd->is_packable();
            f.presence = fd->has_presence();
            f.map = fd->is_map();
            f.utf8 = fd->type() == Field::TYPE_STRING &&
                     fd->file()->syntax() == gp::FileDescriptor::SYNTAX_PROTO3;
            f.required = fd->is_required();
            t.has_required = t.has_required || f.required;
            f.oneof = fd->containing_oneof() != nullptr ? fd->containing_oneof()->index() : -1;
            if (f.kind == Kind::enumeration)
                f.enumeration = enum_table(fd->enum_type());
            f.default_json = default_json(f);
            if (f.number < 256) {
                if (t.dense_index.size() <= static_cast<std::size_t>(f.number))
                    t.dense_index.resize(static_cast<std::size_t>(f.number) + 1, 0);
                t.dense_index[static_cast<std::size_t>(f.number)] = i + 1;
            } else {
                t.sparse_index[f.number] = i;
            }
            t.fields.push_back(std::move(f));
        }
        return &t;
    }

    MessageTable& message_of(FieldInfo& f) {
        if (f.message == nullptr)
            f.message = table(f.descriptor->message_type());
        return *f.message;
    }

    static std::string default_json(const FieldInfo& f) {
        const Field* fd = f.descriptor;
        std::string out;
        switch (f.kind) {
            case Kind::int32:
            case Kind::sint32:
            case Kind::sfixed32:
                append_int(out, fd->default_value_int32(), false);
                break;
            case Kind::int64:
            case Kind::sint64:
            case Kind::sfixed64:
                append_int(out, fd->default_value_int64(), true);
                break;
            case Kind::uint32:
            case Kind::fixed32:
                append_int(out, fd->default_value_uint32(), false);
                break;
            case Kind::uint64:
            case Kind::fixed64:
                append_int(out, fd->default_value_uint64(), true);
                break;
            case Kind::boolean:
                out = fd->default_value_bool() ? "true" : "false";
                break;
            case Kind::float32:
                append_float(out, fd->default_value_float());
                break;
            case Kind::float64:
                append_float(out, fd->default_value_double());
                break;
            case Kind::string:
                append_json_string(out, fd->default_value_string());
                break;
            case Kind::bytes:
                append_base64(out, fd->default_value_string());
                break;
            case Kind::enumeration: {
                if (f.enumeration->null_value) {
                    out = "null";
                    break;
                }
                const int number = fd->default_value_enum()->number();
                const std::string* name = f.enumeration->name(number);
                if (name != nullptr)
                    out = *name;
                else
                    append_int(out, number, false);
                break;
            }
            case Kind::message:
            case Kind::group:
                break;  // written from the (empty) message's own table
        }
        return out;
    }

    // ---- errors ----

    bool fail(std::string why) {
        error = std::move(why);
        parse_error = true;
        return false;
    }
    bool fail_print(std::string why) {
        error = std::move(why);
        parse_error = false;
        return false;
    }
    static std::string what(const FieldInfo* f, int number, std::uint32_t at) {
        return (f != nullptr ? f->what : "field " + std::to_string(number)) + " at byte " +
               std::to_string(at);
    }

    // ---- the wire format ----

    bool varint(std::uint32_t& pos, std::uint32_t end, std::uint64_t& v) const {
        // The common case first: one byte.
        if (pos < end && data[pos] < 0x80) {
            v = data[pos++];
            return true;
        }
        v = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            if (pos >= end)
                return false;
            const unsigned char b = data[pos++];
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if (b < 0x80)
                return true;
        }
        return false;  // longer than 10 bytes
    }

    // Moves `pos` past a group's content and its end tag; `content_end` is where the end tag is.
    bool skip_group(std::uint32_t& pos, std::uint32_t end, int number, int depth,
                    std::uint32_t& content_end) {
        if (depth > kMaxDepth)
            return fail("messages nested deeper than " + std::to_string(kMaxDepth));
        while (pos < end) {
            const std::uint32_t at = pos;
            std::uint64_t tag;
            if (!varint(pos, end, tag) || tag > UINT32_MAX)
                return fail("invalid field tag at byte " + std::to_string(at));
            const int inner = static_cast<int>(tag >> 3);
            const int wire = static_cast<int>(tag & 7);
            if (inner == 0)
                return fail("field number 0 at byte " + std::to_string(at));
            std::uint64_t v;
            switch (wire) {
                case 0:
                    if (!varint(pos, end, v))
                        return fail(what(nullptr, inner, at) +
                                    ": varint cut short or longer than 10 bytes");
                    break;
                case 1:
                case 5: {
                    const std::uint32_t size = wire == 1 ? 8 : 4;
                    if (end - pos < size)
                        return fail(what(nullptr, inner, at) + ": value cut short");
                    pos += size;
                    break;
                }
                case 2:
                    if (!varint(pos, end, v))
                        return fail(what(nullptr, inner, at) + ": length cut short or malformed");
                    if (v > end - pos)
                        return fail(what(nullptr, inner, at) + " declares " + std::to_string(v) +
                                    " bytes, only " + std::to_string(end - pos) + " follow");
                    pos += static_cast<std::uint32_t>(v);
                    break;
                case 3: {
                    std::uint32_t ignored;
                    if (!skip_group(pos, end, inner, depth + 1, ignored))
                        return false;
                    break;
                }
                case 4:
                    if (inner != number)
                        return fail(what(nullptr, inner, at) +
                                    ": end of a group that was not started");
                    content_end = at;
                    return true;
                default:
                    return fail(what(nullptr, inner, at) + ": invalid wire type " +
                                std::to_string(wire));
            }
        }
        return fail("group field " + std::to_string(number) + " is not closed");
    }

    // Records the fields of one segment [pos, end) of a message of table `t` into the slots at
    // `base`.
    bool scan(MessageTable& t, std::uint32_t pos, std::uint32_t end, std::size_t base, int depth) {
        const std::size_t n = t.fields.size();
        while (pos < end) {
            const std::uint32_t at = pos;
            std::uint64_t tag;
            if (!varint(pos, end, tag) || tag > UINT32_MAX)
                return fail("invalid field tag at byte " + std::to_string(at));
            const int number = static_cast<int>(tag >> 3);
            const std::uint8_t wire = static_cast<std::uint8_t>(tag & 7);
            if (number == 0)
                return fail("field number 0 at byte " + std::to_string(at));
            const int index = t.find(number);
            FieldInfo* f = index >= 0 ? &t.fields[static_cast<std::size_t>(index)] : nullptr;
            Occurrence o{0, 0, 0, at, -1, wire};
            switch (wire) {
                case 0:
                    if (!varint(pos, end, o.value))
                        return fail(what(f, number, at) +
                                    ": varint cut short or longer than 10 bytes");
                    break;
                case 1:
                    if (end - pos < 8)
                        return fail(what(f, number, at) + ": 8-byte value cut short");
                    std::memcpy(&o.value, data + pos, 8);
                    pos += 8;
                    break;
                case 5: {
                    if (end - pos < 4)
                        return fail(what(f, number, at) + ": 4-byte value cut short");
                    std::uint32_t v;
                    std::memcpy(&v, data + pos, 4);
                    o.value = v;
                    pos += 4;
                    break;
                }
                case 2: {
                    std::uint64_t length;
                    if (!varint(pos, end, length))
                        return fail(what(f, number, at) + ": length cut short or malformed");
                    if (length > end - pos)
                        return fail(what(f, number, at) + " declares " + std::to_string(length) +
                                    " bytes, only " + std::to_string(end - pos) + " follow");
                    o.begin = pos;
                    pos += static_cast<std::uint32_t>(length);
                    o.end = pos;
                    break;
                }
                case 3:
                    o.begin = pos;
                    if (!skip_group(pos, end, number, depth + 1, o.end)) {
                        error = "in " + what(f, number, at) + ": " + error;
                        return false;
                    }
                    break;
                case 4:
                    return fail(what(f, number, at) + ": end of a group that was not started");
                default:
                    return fail(what(f, number, at) + ": invalid wire type " +
                                std::to_string(wire));
            }
            // A value of another wire type than its field's is an unknown field, as in
            // libprotobuf; a repeated number may come packed (length-delimited) or not.
            if (f == nullptr || (wire != f->wire && !(wire == 2 && f->packable)))
                continue;
            if (f->utf8 && !valid_utf8(data + o.begin, o.end - o.begin))
                return fail(what(f, number, at) +
                            ": invalid UTF-8 in a string field (proto3 strings are UTF-8; bytes "
                            "carry raw bytes)");
            if (wire == 0 && f->enumeration != nullptr && f->enumeration->closed &&
                f->enumeration->name(static_cast<std::int32_t>(o.value)) == nullptr)
                continue;  // a closed enum's unknown number: an unknown field
            record(t, *f, static_cast<std::size_t>(index), n, base, o);
        }
        return true;
    }

    void record(MessageTable& t, const FieldInfo& f, std::size_t index, std::size_t n,
                std::size_t base, const Occurrence& o) {
        const auto at = static_cast<std::int32_t>(occurrences.size());
        occurrences.push_back(o);
        std::int32_t* s = slots.data() + base;
        if (f.oneof >= 0) {
            // A oneof keeps its last member: another member clears the one before.
            std::int32_t& current = s[2 * n + static_cast<std::size_t>(f.oneof)];
            if (current != static_cast<std::int32_t>(index)) {
                if (current >= 0) {
                    FieldInfo& old = t.fields[static_cast<std::size_t>(current)];
                    if ((old.kind == Kind::message || old.kind == Kind::group) && s[current] >= 0)
                        replaced.emplace_back(&old, s[current]);
                    s[current] = s[n + static_cast<std::size_t>(current)] = -1;
                }
                current = static_cast<std::int32_t>(index);
                s[index] = s[n + index] = -1;
            }
        }
        if (f.repeated || f.kind == Kind::message || f.kind == Kind::group) {
            if (s[index] < 0)
                s[index] = at;
            else
                occurrences[static_cast<std::size_t>(s[n + index])].next = at;
            s[n + index] = at;
        } else {
            s[index] = at;  // the last value of a singular field wins
        }
    }

    // ---- JSON ----

    void scalar(const FieldInfo& f, std::uint64_t v) {
        std::string& o = *out;
        switch (f.kind) {
            case Kind::int32:
            case Kind::sfixed32:
                append_int(o, static_cast<std::int32_t>(v), false);
                break;
            case Kind::int64:
            case Kind::sfixed64:
                append_int(o, static_cast<std::int64_t>(v), true);
                break;
            case Kind::uint32:
            case Kind::fixed32:
                append_int(o, static_cast<std::uint32_t>(v), false);
                break;
            case Kind::uint64:
            case Kind::fixed64:
                append_int(o, v, true);
                break;
            case Kind::sint32:
                append_int(o, zigzag32(v), false);
                break;
            case Kind::sint64:
                append_int(o, zigzag64(v), true);
                break;
            case Kind::boolean:
                o += v != 0 ? "true" : "false";
                break;
            case Kind::float32:
                append_float(o, float_of(v));
                break;
            case Kind::float64:
                append_float(o, double_of(v));
                break;
            case Kind::enumeration: {
                if (f.enumeration->null_value) {
                    o += "null";
                    break;
                }
                const auto number = static_cast<std::int32_t>(v);
                const std::string* name = f.enumeration->name(number);
                if (name != nullptr)
                    o += *name;
                else
                    append_int(o, number, false);  // an open enum's number the .proto does not name
                break;
            }
            default:
                break;
        }
    }

    // One value of a field (not a message): a scalar, a string or bytes.
    void value(const FieldInfo& f, const Occurrence& o) {
        if (f.kind == Kind::string)
            append_string(*out, std::string_view(reinterpret_cast<const char*>(data) + o.begin,
                                                 o.end - o.begin));
        else if (f.kind == Kind::bytes)
            append_base64(*out, std::string_view(reinterpret_cast<const char*>(data) + o.begin,
                                                 o.end - o.begin));
        else
            scalar(f, o.value);
    }

    // A packed run of numbers: each one, comma-separated after `count` already written.
    bool packed(const FieldInfo& f, const Occurrence& o, std::size_t& count) {
        std::uint32_t pos = o.begin;
        const std::uint32_t size = f.wire == 1 ? 8 : f.wire == 5 ? 4 : 0;
        if (size != 0 && (o.end - o.begin) % size != 0)
            return fail(f.what + " at byte " + std::to_string(o.tag_at) + ": packed " +
                        std::to_string(o.end - o.begin) + " bytes are not whole " +
                        std::to_string(size) + "-byte values");
        while (pos < o.end) {
            std::uint64_t v = 0;
            if (size == 0) {
                if (!varint(pos, o.end, v))
                    return fail(f.what + " at byte " + std::to_string(o.tag_at) +
                                ": packed varint cut short or longer than 10 bytes");
                if (f.enumeration != nullptr && f.enumeration->closed &&
                    f.enumeration->name(static_cast<std::int32_t>(v)) == nullptr)
                    continue;
            } else {
                std::memcpy(&v, data + pos, size);
                pos += size;
            }
            if (count++ > 0)
                *out += ',';
            scalar(f, v);
        }
        return true;
    }

    // A field of a message whose slots are at `base` (index `i` of `t`).
    bool field(MessageTable& t, std::size_t i, std::size_t base, int depth) {
        FieldInfo& f = t.fields[i];
        const std::int32_t head = slots[base + i];
        if (f.map)
            return map(f, head, depth);
        if (f.repeated) {
            *out += '[';
            std::size_t count = 0;
            for (std::int32_t k = head; k >= 0; k = occurrences[static_cast<std::size_t>(k)].next) {
                const Occurrence o = occurrences[static_cast<std::size_t>(k)];
                if (f.kind == Kind::message || f.kind == Kind::group) {
                    if (count++ > 0)
                        *out += ',';
                    if (!message(message_of(f), k, true, depth + 1, &f))
                        return false;
                } else if (o.wire == 2 && f.packable) {
                    if (!packed(f, o, count))
                        return false;
                } else {
                    if (count++ > 0)
                        *out += ',';
                    value(f, o);
                }
            }
            *out += ']';
            return true;
        }
        return single(f, head, depth);
    }

    // A singular field from its occurrences (`head`, -1 for none).
    bool single(FieldInfo& f, std::int32_t head, int depth) {
        if (f.kind == Kind::message || f.kind == Kind::group)
            return message(message_of(f), head, false, depth + 1, &f);
        if (head < 0)
            *out += f.default_json;
        else
            value(f, occurrences[static_cast<std::size_t>(head)]);
        return true;
    }

    // A map: {"key": value, …}, the last entry of a key winning, keys in order of first
    // appearance.
    bool map(FieldInfo& f, std::int32_t head, int depth) {
        MessageTable& entry = message_of(f);
        const int key_index = entry.find(1), value_index = entry.find(2);
        if (key_index < 0 || value_index < 0)
            return fail_print(f.what + ": a map entry without key or value");
        FieldInfo& key_field = entry.fields[static_cast<std::size_t>(key_index)];
        FieldInfo& value_field = entry.fields[static_cast<std::size_t>(value_index)];
        std::vector<std::pair<std::string, std::string>> entries;
        std::unordered_map<std::string, std::size_t> index;
        for (std::int32_t k = head; k >= 0; k = occurrences[static_cast<std::size_t>(k)].next) {
            if (depth + 1 > kMaxDepth)
                return fail("messages nested deeper than " + std::to_string(kMaxDepth));
            const Occurrence o = occurrences[static_cast<std::size_t>(k)];
            const std::size_t base = push(entry);
            if (!scan(entry, o.begin, o.end, base, depth + 1)) {
                error = "in " + f.what + " at byte " + std::to_string(o.tag_at) + ": " + error;
                return false;
            }
            const std::int32_t key_at = slots[base + static_cast<std::size_t>(key_index)];
            const std::int32_t value_at = slots[base + static_cast<std::size_t>(value_index)];
            slots.resize(base);
            // Keys are strings in JSON: a number or bool key is its text.
            const std::size_t start = out->size();
            if (key_at < 0 && key_field.kind == Kind::string)
                *out += "\"\"";
            else if (key_at < 0)
                *out += key_field.default_json;
            else
                value(key_field, occurrences[static_cast<std::size_t>(key_at)]);
            std::string key = out->substr(start);
            out->resize(start);
            if (key.front() != '"')
                key = '"' + key + '"';
            if (!single(value_field, value_at, depth + 1)) {
                error = "in " + f.what + " at byte " + std::to_string(o.tag_at) + ": " + error;
                return false;
            }
            std::string text = out->substr(start);
            out->resize(start);
            auto [it, added] = index.emplace(key, entries.size());
            if (added)
                entries.emplace_back(std::move(key), std::move(text));
            else
                entries[it->second].second = std::move(text);
        }
        *out += '{';
        for (std::size_t k = 0; k < entries.size(); ++k) {
            if (k > 0)
                *out += ',';
            *out += entries[k].first;
            *out += ':';
            *out += entries[k].second;
        }
        *out += '}';
        return true;
    }

    std::size_t push(const MessageTable& t) {
        const std::size_t base = slots.size();
        slots.resize(base + 2 * t.fields.size() + static_cast<std::size_t>(t.oneofs), -1);
        return base;
    }

    // A message from its occurrences starting at `head` (all of them, merged, or only that one
    // when `one`); `via` is the field it is the value of, for reasons.
    bool message(MessageTable& t, std::int32_t head, bool one, int depth, const FieldInfo* via) {
        if (depth > kMaxDepth)
            return fail("messages nested deeper than " + std::to_string(kMaxDepth));
        const std::size_t base = push(t);
        const std::size_t replaced_mark = replaced.size();
        std::uint32_t first_at = 0;
        for (std::int32_t k = head; k >= 0; k = occurrences[static_cast<std::size_t>(k)].next) {
            const Occurrence o = occurrences[static_cast<std::size_t>(k)];
            if (k == head)
                first_at = o.tag_at;
            if (!scan(t, o.begin, o.end, base, depth)) {
                if (via != nullptr)
                    error =
                        "in " + via->what + " at byte " + std::to_string(o.tag_at) + ": " + error;
                return false;
            }
            if (one)
                break;
        }
        // A replaced oneof member is converted and thrown away: only a broken body counts.
        for (std::size_t r = replaced_mark; r < replaced.size(); ++r) {
            const std::size_t at = out->size();
            const auto [f, chain] = replaced[r];
            const bool ok = message(message_of(*f), chain, false, depth + 1, f);
            out->resize(at);
            if (!ok && parse_error)
                return false;
        }
        replaced.resize(replaced_mark);
        if (!fields(t, base, depth)) {
            if (via != nullptr)
                error = "in " + via->what + " at byte " + std::to_string(first_at) + ": " + error;
            return false;
        }
        slots.resize(base);
        return true;
    }

    bool fields(MessageTable& t, std::size_t base, int depth) {
        const std::size_t n = t.fields.size();
        if (t.has_required) {
            for (std::size_t i = 0; i < n; ++i)
                if (t.fields[i].required && slots[base + i] < 0)
                    return fail("required field " + t.fields[i].descriptor->name() + " of " +
                                t.descriptor->full_name() + " missing");
        }
        if (t.well_known != WellKnown::none)
            return well_known(t, base, depth);
        *out += '{';
        bool first = true;
        for (std::size_t i = 0; i < n; ++i) {
            const FieldInfo& f = t.fields[i];
            if (!f.repeated && f.presence && slots[base + i] < 0)
                continue;
            if (!first)
                *out += ',';
            first = false;
            *out += f.key;
            if (!field(t, i, base, depth))
                return false;
        }
        *out += '}';
        return true;
    }

    // The value of the field numbered `number` (a varint), or 0.
    std::uint64_t number_of(const MessageTable& t, std::size_t base, int number) const {
        const int i = t.find(number);
        if (i < 0)
            return 0;
        const std::int32_t at = slots[base + static_cast<std::size_t>(i)];
        return at < 0 ? 0 : occurrences[static_cast<std::size_t>(at)].value;
    }

    std::string_view bytes_of(const MessageTable& t, std::size_t base, int number,
                              std::int32_t* occurrence = nullptr) const {
        const int i = t.find(number);
        const std::int32_t at = i < 0 ? -1 : slots[base + static_cast<std::size_t>(i)];
        if (occurrence != nullptr)
            *occurrence = at;
        if (at < 0)
            return {};
        const Occurrence& o = occurrences[static_cast<std::size_t>(at)];
        return {reinterpret_cast<const char*>(data) + o.begin, o.end - o.begin};
    }

    bool well_known(MessageTable& t, std::size_t base, int depth) {
        std::string& o = *out;
        switch (t.well_known) {
            case WellKnown::timestamp: {
                const auto seconds = static_cast<std::int64_t>(number_of(t, base, kSeconds));
                const auto nanos = static_cast<std::int32_t>(number_of(t, base, kNanos));
                // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as the JSON mapping allows.
                if (seconds < -62135596800LL || seconds > 253402300799LL || nanos < 0 ||
                    nanos > 999999999)
                    return fail_print("google.protobuf.Timestamp out of range (seconds " +
                                      std::to_string(seconds) + ", nanos " + std::to_string(nanos) +
                                      ")");
                std::int64_t days = seconds / 86400, rest = seconds % 86400;
                if (rest < 0) {
                    rest += 86400;
                    --days;
                }
                std::int64_t year;
                unsigned month, day;
                civil_from_days(days, year, month, day);
                char buf[40];
                std::snprintf(buf, sizeof buf, "\"%04lld-%02u-%02uT%02d:%02d:%02d",
                              static_cast<long long>(year), month, day,
                              static_cast<int>(rest / 3600), static_cast<int>(rest / 60 % 60),
                              static_cast<int>(rest % 60));
                o += buf;
                append_nanos(o, nanos);
                o += "Z\"";
                return true;
            }
            case WellKnown::duration: {
                const auto seconds = static_cast<std::int64_t>(number_of(t, base, kSeconds));
                const auto nanos = static_cast<std::int32_t>(number_of(t, base, kNanos));
                if (seconds < -315576000000LL || seconds > 315576000000LL || nanos < -999999999 ||
                    nanos > 999999999 || (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0))
                    return fail_print("google.protobuf.Duration out of range (seconds " +
                                      std::to_string(seconds) + ", nanos " + std::to_string(nanos) +
                                      ")");
                o += '"';
                if (seconds < 0 || nanos < 0)
                    o += '-';
                append_int(o, seconds < 0 ? -seconds : seconds, false);
                append_nanos(o, nanos < 0 ? -nanos : nanos);
                o += "s\"";
                return true;
            }
            case WellKnown::wrapper: {
                const int i = t.find(kWrapperValue);
                if (i < 0)
                    break;
                return single(t.fields[static_cast<std::size_t>(i)],
                              slots[base + static_cast<std::size_t>(i)], depth);
            }
            case WellKnown::field_mask: {
                const int i = t.find(1);
                if (i < 0 || t.fields[static_cast<std::size_t>(i)].kind != Kind::string ||
                    !t.fields[static_cast<std::size_t>(i)].repeated)
                    break;
                std::string paths;
                for (std::int32_t k = slots[base + static_cast<std::size_t>(i)]; k >= 0;
                     k = occurrences[static_cast<std::size_t>(k)].next) {
                    const Occurrence& p = occurrences[static_cast<std::size_t>(k)];
                    if (k != slots[base + static_cast<std::size_t>(i)])
                        paths += ',';
                    bool upper = false;
                    for (std::uint32_t c = p.begin; c < p.end; ++c) {
                        const char ch = static_cast<char>(data[c]);
                        if (ch == '_') {
                            upper = true;
                        } else {
                            paths +=
                                upper && ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 32) : ch;
                            upper = false;
                        }
                    }
                }
                append_json_string(o, paths);
                return true;
            }
            case WellKnown::struct_object:
            case WellKnown::list_value: {
                const int i = t.find(1);
                if (i < 0)
                    break;
                return field(t, static_cast<std::size_t>(i), base, depth);
            }
            case WellKnown::value: {
                const std::int32_t set =
                    t.oneofs > 0 ? slots[base + 2 * t.fields.size()] : std::int32_t{-1};
                if (set < 0) {
                    o += "null";
                    return true;
                }
                FieldInfo& f = t.fields[static_cast<std::size_t>(set)];
                const std::int32_t at = slots[base + static_cast<std::size_t>(set)];
                if (f.kind == Kind::float64 && at >= 0 &&
                    !std::isfinite(double_of(occurrences[static_cast<std::size_t>(at)].value)))
                    return fail_print(
                        "google.protobuf.Value holds a number JSON cannot write (NaN or "
                        "infinite)");
                return single(f, at, depth);
            }
            case WellKnown::empty:
                o += "{}";
                return true;
            case WellKnown::any:
                return any(t, base, depth);
            case WellKnown::none:
                break;
        }
        // A well-known name with an unexpected shape: an ordinary message.
        MessageTable plain = t;
        plain.well_known = WellKnown::none;
        return fields(plain, base, depth);
    }

    bool any(MessageTable& t, std::size_t base, int depth) {
        const std::string url(bytes_of(t, base, kAnyTypeUrl));
        if (url.empty()) {
            *out += "{}";
            return true;
        }
        std::int32_t value_at;
        bytes_of(t, base, kAnyValue, &value_at);
        const std::string type = url.substr(url.rfind('/') + 1);
        const gp::Descriptor* d = t.descriptor->file()->pool()->FindMessageTypeByName(type);
        if (d == nullptr)
            return fail_print("google.protobuf.Any holds " + url +
                              ", a type the descriptor set does not have");
        MessageTable& inner = *table(d);
        // The value's bytes are a message of their own: one occurrence of it.
        std::int32_t head = -1;
        if (value_at >= 0) {
            Occurrence o = occurrences[static_cast<std::size_t>(value_at)];
            o.next = -1;
            head = static_cast<std::int32_t>(occurrences.size());
            occurrences.push_back(o);
        }
        *out += "{\"@type\":";
        append_json_string(*out, url);
        auto wrap = [&] {
            error = "google.protobuf.Any's value is not a valid " + type + ": " + error;
            return false;
        };
        if (type.rfind("google.protobuf.", 0) == 0) {
            // A well-known type has a JSON form of its own: {"@type": …, "value": …}.
            *out += ",\"value\":";
            if (!message(inner, head, true, depth + 1, nullptr))
                return wrap();
            *out += '}';
            return true;
        }
        // A message: its fields beside "@type".
        const std::size_t at = out->size();
        if (!message(inner, head, true, depth + 1, nullptr))
            return wrap();
        if (out->size() - at > 2)
            (*out)[at] = ',';
        else
            out->resize(at), *out += '}';
        return true;
    }
};

ProtobufDecoder::ProtobufDecoder(std::shared_ptr<const ProtobufSchema> schema)
    : impl_(std::make_unique<Impl>()) {
    impl_->schema = std::move(schema);
}

ProtobufDecoder::~ProtobufDecoder() = default;
ProtobufDecoder::ProtobufDecoder(ProtobufDecoder&&) noexcept = default;
ProtobufDecoder& ProtobufDecoder::operator=(ProtobufDecoder&&) noexcept = default;

std::optional<std::string> ProtobufDecoder::to_json(std::string_view body, std::string& json) {
    Impl& m = *impl_;
    json.clear();
    if (body.size() > static_cast<std::size_t>(INT_MAX))
        return "body of " + std::to_string(body.size()) +
               " bytes is larger than a protobuf message can be (2 GiB)";
    m.data = reinterpret_cast<const unsigned char*>(body.data());
    m.out = &json;
    m.occurrences.clear();
    m.slots.clear();
    m.replaced.clear();
    m.occurrences.push_back(Occurrence{0, 0, static_cast<std::uint32_t>(body.size()), 0, -1, 2});
    MessageTable& root = *m.table(&m.schema->descriptor());
    if (m.message(root, 0, true, 0, nullptr))
        return std::nullopt;
    json.clear();
    if (m.parse_error)
        return "body of " + std::to_string(body.size()) + " bytes is not a valid " +
               m.schema->message_name() + " protobuf message: " + m.error;
    return "body of " + std::to_string(body.size()) + " bytes: " + m.error;
}

}  // namespace rmq2pg
