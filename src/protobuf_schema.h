// format: protobuf's message type: the descriptor set (protoc --include_imports
// --descriptor_set_out) loaded once per pipeline, and the config's JSON Pointers checked and
// spelled against the message's fields. Only protobuf_schema.cpp and protobuf_decoder.cpp
// include libprotobuf.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace google::protobuf {
class Descriptor;
class DescriptorPool;
class DynamicMessageFactory;
class Message;
}  // namespace google::protobuf

namespace rmq2pg {

// Why a descriptor set or message name cannot be used; `key` says which config key is wrong.
class ProtobufSchemaError : public std::runtime_error {
  public:
    enum class Key { descriptor_set, message };
    ProtobufSchemaError(Key which, const std::string& what)
        : std::runtime_error(what), key(which) {}
    Key key;
};

// A config key (relative to the pipeline: "columns.value", "children[0].from") and what is wrong.
struct ProtobufNameProblem {
    std::string key;
    std::string what;
};

// The descriptor pool, its DynamicMessageFactory and the message's prototype, built once when
// the config loads and immutable afterwards: every worker of the pipeline shares it read-only
// (libprotobuf's const descriptor lookups and the prototype's New() are thread-safe; the factory
// is only asked for prototypes here, under its own lock). Each worker parses with its own
// ProtobufDecoder.
class ProtobufSchema {
  public:
    // Throws ProtobufSchemaError: a file that cannot be read, is not a FileDescriptorSet or
    // whose files do not build (an import missing: protoc needs --include_imports), or a
    // message name the set does not define (the error lists those it does).
    static std::shared_ptr<const ProtobufSchema> load(const std::string& descriptor_set_path,
                                                      const std::string& message);
    // The same from the set's bytes; `source` names them in errors.
    static std::shared_ptr<const ProtobufSchema> from_bytes(std::string_view descriptor_set,
                                                            const std::string& message,
                                                            const std::string& source);
    ~ProtobufSchema();
    ProtobufSchema(const ProtobufSchema&) = delete;
    ProtobufSchema& operator=(const ProtobufSchema&) = delete;

    const std::string& message_name() const { return message_name_; }
    // A hash of the set's bytes: the pipeline's fingerprint, so a reload sees a changed file.
    const std::string& digest() const { return digest_; }
    const google::protobuf::Descriptor& descriptor() const { return *descriptor_; }
    const google::protobuf::Message& prototype() const { return *prototype_; }
    // The prototype of another message of the pool (google.protobuf.Any's content), or null.
    const google::protobuf::Message* prototype_of(std::string_view full_name) const;

    // Pointers are written with the .proto's field names or their lowerCamel JSON names; the
    // canonical JSON the mapping reads (protobuf_decoder.h) has the .proto names. Rewrites every
    // pointer of `target` (columns, delete_when, children's `from` and their columns, nested)
    // to .proto names, and marks the columns that read a `bytes` field (ColumnSource::base64).
    // `strict`: a pointer that names no field is a problem (config); else (columns by name,
    // made from the table's columns) it stays as it is and reads nothing.
    std::vector<ProtobufNameProblem> apply_names(TargetConfig& target, bool strict) const;
    // One pointer from the message's root (dedupe): the problem, if any.
    std::optional<std::string> apply_name(std::string& pointer) const;

  private:
    ProtobufSchema() = default;

    std::string message_name_;
    std::string digest_;
    std::unique_ptr<google::protobuf::DescriptorPool> pool_;
    std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
    const google::protobuf::Descriptor* descriptor_ = nullptr;
    const google::protobuf::Message* prototype_ = nullptr;
};

}  // namespace rmq2pg
