// The reflection printer that format: protobuf used before src/protobuf_decoder.cpp walked the
// wire format itself: libprotobuf parses the body into a DynamicMessage and the message is
// printed by reflection. Kept only as the oracle of test_protobuf's differential tests.
#include "protobuf_reflection_oracle.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "civil_date.h"
#include "json_escape.h"

namespace rmq2pg {

namespace gp = google::protobuf;
using Field = gp::FieldDescriptor;

namespace {

constexpr int kMaxDepth = 100;

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, const std::string& bytes) {
    out += '"';
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += kBase64[(v >> 18) & 63];
        out += kBase64[(v >> 12) & 63];
        out += kBase64[(v >> 6) & 63];
        out += kBase64[v & 63];
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
    auto result = std::to_chars(buf, buf + sizeof buf, value);
    if (quoted)
        out += '"';
    out.append(buf, result.ptr);
    if (quoted)
        out += '"';
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

// Field numbers of the well-known types (google/protobuf/*.proto).
constexpr int kSeconds = 1, kNanos = 2, kWrapperValue = 1, kAnyTypeUrl = 1, kAnyValue = 2;

struct Printer {
    const ProtobufSchema& schema;
    gp::Arena& arena;
    std::string& out;
    std::string error;
    std::string scratch;

    bool message(const gp::Message& m, int depth) {
        if (depth > kMaxDepth) {
            error = "nested deeper than " + std::to_string(kMaxDepth) + " messages";
            return false;
        }
        const gp::Descriptor* d = m.GetDescriptor();
        const std::string& name = d->full_name();
        if (name.rfind("google.protobuf.", 0) == 0) {
            int handled = well_known(m, name, depth);
            if (handled >= 0)
                return handled == 1;
        }
        const gp::Reflection* r = m.GetReflection();
        out += '{';
        bool first = true;
        for (int i = 0; i < d->field_count(); ++i) {
            const Field* f = d->field(i);
            if (!f->is_repeated() && f->has_presence() && !r->HasField(m, f))
                continue;
            if (!first)
                out += ',';
            first = false;
            append_json_string(out, f->name());
            out += ':';
            if (!field(m, f, depth))
                return false;
        }
        out += '}';
        return true;
    }

    bool field(const gp::Message& m, const Field* f, int depth) {
        const gp::Reflection* r = m.GetReflection();
        if (f->is_map()) {
            const Field* key = f->message_type()->map_key();
            const Field* value = f->message_type()->map_value();
            out += '{';
            for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
                const gp::Message& entry = r->GetRepeatedMessage(m, f, i);
                if (i > 0)
                    out += ',';
                // Keys are strings in JSON: a number or bool key is its text.
                std::size_t at = out.size();
                if (!single(entry, key, depth + 1))
                    return false;
                if (key->type() != Field::TYPE_STRING) {
                    std::string text = out.substr(at);
                    out.resize(at);
                    if (text.front() == '"')
                        text = text.substr(1, text.size() - 2);
                    append_json_string(out, text);
                }
                out += ':';
                if (!single(entry, value, depth + 1))
                    return false;
            }
            out += '}';
            return true;
        }
        if (f->is_repeated()) {
            out += '[';
            for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
                if (i > 0)
                    out += ',';
                if (!element(m, f, i, depth))
                    return false;
            }
            out += ']';
            return true;
        }
        return single(m, f, depth);
    }

    bool enum_value(const Field* f, int number) {
        if (f->enum_type()->full_name() == "google.protobuf.NullValue") {
            out += "null";
            return true;
        }
        const gp::EnumValueDescriptor* value = f->enum_type()->FindValueByNumber(number);
        if (value != nullptr)
            append_json_string(out, value->name());
        else
            append_int(out, number, false);  // an open enum's value the .proto does not name
        return true;
    }

    bool single(const gp::Message& m, const Field* f, int depth) {
        const gp::Reflection* r = m.GetReflection();
        switch (f->cpp_type()) {
            case Field::CPPTYPE_INT32:
                append_int(out, r->GetInt32(m, f), false);
                return true;
            case Field::CPPTYPE_UINT32:
                append_int(out, r->GetUInt32(m, f), false);
                return true;
            case Field::CPPTYPE_INT64:
                append_int(out, r->GetInt64(m, f), true);
                return true;
            case Field::CPPTYPE_UINT64:
                append_int(out, r->GetUInt64(m, f), true);
                return true;
            case Field::CPPTYPE_DOUBLE:
                append_float(out, r->GetDouble(m, f));
                return true;
            case Field::CPPTYPE_FLOAT:
                append_float(out, r->GetFloat(m, f));
                return true;
            case Field::CPPTYPE_BOOL:
                out += r->GetBool(m, f) ? "true" : "false";
                return true;
            case Field::CPPTYPE_ENUM:
                return enum_value(f, r->GetEnumValue(m, f));
            case Field::CPPTYPE_STRING: {
                const std::string& s = r->GetStringReference(m, f, &scratch);
                if (f->type() == Field::TYPE_BYTES)
                    append_base64(out, s);
                else
                    append_json_string(out, s);
                return true;
            }
            case Field::CPPTYPE_MESSAGE:
                return message(r->GetMessage(m, f), depth + 1);
        }
        return true;
    }

    bool element(const gp::Message& m, const Field* f, int i, int depth) {
        const gp::Reflection* r = m.GetReflection();
        switch (f->cpp_type()) {
            case Field::CPPTYPE_INT32:
                append_int(out, r->GetRepeatedInt32(m, f, i), false);
                return true;
            case Field::CPPTYPE_UINT32:
                append_int(out, r->GetRepeatedUInt32(m, f, i), false);
                return true;
            case Field::CPPTYPE_INT64:
                append_int(out, r->GetRepeatedInt64(m, f, i), true);
                return true;
            case Field::CPPTYPE_UINT64:
                append_int(out, r->GetRepeatedUInt64(m, f, i), true);
                return true;
            case Field::CPPTYPE_DOUBLE:
                append_float(out, r->GetRepeatedDouble(m, f, i));
                return true;
            case Field::CPPTYPE_FLOAT:
                append_float(out, r->GetRepeatedFloat(m, f, i));
                return true;
            case Field::CPPTYPE_BOOL:
                out += r->GetRepeatedBool(m, f, i) ? "true" : "false";
                return true;
            case Field::CPPTYPE_ENUM:
                return enum_value(f, r->GetRepeatedEnumValue(m, f, i));
            case Field::CPPTYPE_STRING: {
                const std::string& s = r->GetRepeatedStringReference(m, f, i, &scratch);
                if (f->type() == Field::TYPE_BYTES)
                    append_base64(out, s);
                else
                    append_json_string(out, s);
                return true;
            }
            case Field::CPPTYPE_MESSAGE:
                return message(r->GetRepeatedMessage(m, f, i), depth + 1);
        }
        return true;
    }

    // The well-known types with a JSON form of their own: 1 printed, 0 failed (`error` says
    // why), -1 not one of them (printed as a message).
    int well_known(const gp::Message& m, const std::string& name, int depth) {
        const gp::Descriptor* d = m.GetDescriptor();
        const gp::Reflection* r = m.GetReflection();
        auto int64_of = [&](int number) {
            const Field* f = d->FindFieldByNumber(number);
            return f != nullptr && f->cpp_type() == Field::CPPTYPE_INT64 ? r->GetInt64(m, f) : 0;
        };
        auto int32_of = [&](int number) {
            const Field* f = d->FindFieldByNumber(number);
            return f != nullptr && f->cpp_type() == Field::CPPTYPE_INT32 ? r->GetInt32(m, f) : 0;
        };
        if (name == "google.protobuf.Timestamp") {
            const std::int64_t seconds = int64_of(kSeconds);
            const std::int32_t nanos = int32_of(kNanos);
            // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as the JSON mapping allows.
            if (seconds < -62135596800LL || seconds > 253402300799LL || nanos < 0 ||
                nanos > 999999999) {
                error = "google.protobuf.Timestamp out of range (seconds " +
                        std::to_string(seconds) + ", nanos " + std::to_string(nanos) + ")";
                return 0;
            }
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
                          static_cast<long long>(year), month, day, static_cast<int>(rest / 3600),
                          static_cast<int>(rest / 60 % 60), static_cast<int>(rest % 60));
            out += buf;
            append_nanos(out, nanos);
            out += "Z\"";
            return 1;
        }
        if (name == "google.protobuf.Duration") {
            const std::int64_t seconds = int64_of(kSeconds);
            const std::int32_t nanos = int32_of(kNanos);
            if (seconds < -315576000000LL || seconds > 315576000000LL || nanos < -999999999 ||
                nanos > 999999999 || (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0)) {
                error = "google.protobuf.Duration out of range (seconds " +
                        std::to_string(seconds) + ", nanos " + std::to_string(nanos) + ")";
                return 0;
            }
            out += '"';
            if (seconds < 0 || nanos < 0)
                out += '-';
            append_int(out, seconds < 0 ? -seconds : seconds, false);
            append_nanos(out, nanos < 0 ? -nanos : nanos);
            out += "s\"";
            return 1;
        }
        if (name == "google.protobuf.DoubleValue" || name == "google.protobuf.FloatValue" ||
            name == "google.protobuf.Int64Value" || name == "google.protobuf.UInt64Value" ||
            name == "google.protobuf.Int32Value" || name == "google.protobuf.UInt32Value" ||
            name == "google.protobuf.BoolValue" || name == "google.protobuf.StringValue" ||
            name == "google.protobuf.BytesValue") {
            const Field* f = d->FindFieldByNumber(kWrapperValue);
            if (f == nullptr)
                return -1;
            return single(m, f, depth) ? 1 : 0;
        }
        if (name == "google.protobuf.FieldMask") {
            const Field* f = d->FindFieldByNumber(1);
            if (f == nullptr || f->cpp_type() != Field::CPPTYPE_STRING || !f->is_repeated())
                return -1;
            std::string paths;
            for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
                if (i > 0)
                    paths += ',';
                bool upper = false;
                for (char c : r->GetRepeatedStringReference(m, f, i, &scratch)) {
                    if (c == '_') {
                        upper = true;
                    } else {
                        paths += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
                        upper = false;
                    }
                }
            }
            append_json_string(out, paths);
            return 1;
        }
        if (name == "google.protobuf.Struct") {
            const Field* f = d->FindFieldByNumber(1);
            return f != nullptr && field(m, f, depth) ? 1 : 0;
        }
        if (name == "google.protobuf.ListValue") {
            const Field* f = d->FindFieldByNumber(1);
            return f != nullptr && field(m, f, depth) ? 1 : 0;
        }
        if (name == "google.protobuf.Value") {
            const gp::OneofDescriptor* kind =
                d->oneof_decl_count() > 0 ? d->oneof_decl(0) : nullptr;
            const Field* set = kind != nullptr ? r->GetOneofFieldDescriptor(m, kind) : nullptr;
            if (set == nullptr) {
                out += "null";
                return 1;
            }
            if (set->cpp_type() == Field::CPPTYPE_DOUBLE && !std::isfinite(r->GetDouble(m, set))) {
                error = "google.protobuf.Value holds a number JSON cannot write (NaN or infinite)";
                return 0;
            }
            return single(m, set, depth) ? 1 : 0;
        }
        if (name == "google.protobuf.Empty") {
            out += "{}";
            return 1;
        }
        if (name == "google.protobuf.Any")
            return any(m, depth) ? 1 : 0;
        return -1;
    }

    bool any(const gp::Message& m, int depth) {
        const gp::Descriptor* d = m.GetDescriptor();
        const gp::Reflection* r = m.GetReflection();
        const Field* url_field = d->FindFieldByNumber(kAnyTypeUrl);
        const Field* value_field = d->FindFieldByNumber(kAnyValue);
        if (url_field == nullptr || value_field == nullptr)
            return false;
        std::string url = r->GetString(m, url_field);
        if (url.empty()) {
            out += "{}";
            return true;
        }
        const std::string type = url.substr(url.rfind('/') + 1);
        const gp::Message* prototype = schema.prototype_of(type);
        if (prototype == nullptr) {
            error =
                "google.protobuf.Any holds " + url + ", a type the descriptor set does not have";
            return false;
        }
        gp::Message* inner = prototype->New(&arena);
        const std::string value = r->GetString(m, value_field);
        if (!inner->ParseFromString(value)) {
            error = "google.protobuf.Any's value is not a valid " + type;
            return false;
        }
        out += "{\"@type\":";
        append_json_string(out, url);
        if (type.rfind("google.protobuf.", 0) == 0) {
            // A well-known type has a JSON form of its own: {"@type": …, "value": …}.
            out += ",\"value\":";
            if (!message(*inner, depth + 1))
                return false;
            out += '}';
            return true;
        }
        // A message: its fields beside "@type".
        const std::size_t at = out.size();
        if (!message(*inner, depth + 1))
            return false;
        if (out.size() - at > 2)
            out[at] = ',';
        else
            out.resize(at), out += '}';
        return true;
    }
};

void quiet(gp::LogLevel, const char*, int, const std::string&) {}

}  // namespace

std::optional<std::string> reflection_json(const ProtobufSchema& schema, std::string_view body,
                                           std::string& json) {
    // libprotobuf logs invalid UTF-8; the fuzz tests would fill stderr.
    static std::once_flag once;
    std::call_once(once, [] { gp::SetLogHandler(&quiet); });
    json.clear();
    gp::Arena arena;
    gp::Message* message = schema.prototype().New(&arena);
    if (!message->ParsePartialFromArray(body.data(), static_cast<int>(body.size())))
        return std::string("parse failed");
    if (!message->IsInitialized())
        return "required fields missing: " + message->InitializationErrorString();
    Printer printer{schema, arena, json, {}, {}};
    if (!printer.message(*message, 0)) {
        json.clear();
        return "print failed: " + printer.error;
    }
    return std::nullopt;
}

}  // namespace rmq2pg
