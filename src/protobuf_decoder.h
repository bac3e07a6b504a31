// format: protobuf: a body parsed as the pipeline's message and written as its canonical JSON
// form (proto3's JSON mapping, with the .proto's field names), which the JSON mapping then reads
// as it reads any body. A body that does not parse is poison with the parser's reason. Pure.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protobuf_schema.h"

namespace rmq2pg {

// One worker's decoder: owns its tables (built from the descriptors at first use) and its
// buffers, and is used by that worker's thread only; the schema it reads is shared read-only by
// the pipeline's workers.
//
// The JSON form, as proto3's canonical JSON mapping (what MessageToJsonString prints with
// preserve_proto_field_names and always_print_primitive_fields), written straight from the wire
// format in one pass (protobuf_decoder.cpp) rather than by libprotobuf: its printer re-serialises
// the message and converts it through a TypeResolver built per call, ~9x the cost of parsing,
// and parsing into a DynamicMessage then printing by reflection cost 1.5-1.7x JSON's CPU per
// message (docs/BENCHMARKS.md). Every field without presence is written, defaults included
// (0, "", false, [], {}): an int32 that is 0 is a 0 in the table, not NULL. A field with
// presence (a message, a proto3 `optional`, a oneof member, a proto2 optional) that is unset is
// absent: NULL. 64-bit integers are strings of their exact digits, `bytes` base64, enums their
// names (or the number, for a value the enum does not name), NaN and infinities the strings
// "NaN", "Infinity", "-Infinity", floats and doubles the shortest text that reads back the same
// value; Timestamp is an RFC 3339 UTC string, Duration "1.5s", the wrappers their bare value,
// FieldMask its lowerCamel paths, Struct/Value/ListValue their JSON, Any its "@type" and fields.
// A map key sent twice is one member with its last value.
class ProtobufDecoder {
  public:
    explicit ProtobufDecoder(std::shared_ptr<const ProtobufSchema> schema);
    ~ProtobufDecoder();
    ProtobufDecoder(ProtobufDecoder&&) noexcept;
    ProtobufDecoder& operator=(ProtobufDecoder&&) noexcept;

    // Replaces `json` (a buffer reused across messages) with the JSON form of `body`, or returns
    // why `body` is not a message of the schema's type: where the wire format breaks (byte
    // offset, field number and name), a required field missing, invalid UTF-8 in a string.
    std::optional<std::string> to_json(std::string_view body, std::string& json);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
