// The descriptor set loaded and the pointers spelled against it; see protobuf_schema.h.
#include "protobuf_schema.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "json_pointer.h"

namespace rmq2pg {

namespace gp = google::protobuf;

namespace {

// Where a JSON Pointer stands in the canonical JSON of a message.
struct Place {
    enum class Kind {
        message,   // an object whose keys are `message`'s fields
        repeated,  // an array of `field`'s values
        map,       // an object of `field`'s map values
        value,     // a scalar (or an object with no fields to name: Timestamp, wrappers…)
        free,      // any JSON (Struct, Value, ListValue, Any): not checked further
    };
    Kind kind = Kind::message;
    const gp::Descriptor* message = nullptr;
    const gp::FieldDescriptor* field = nullptr;  // repeated, map, value
};

// What the canonical JSON form makes of a message type: an object of its fields, a single JSON
// value (Timestamp, Duration, FieldMask, the wrappers) or any JSON (Struct, Value, ListValue, Any).
Place place_of_message(const gp::Descriptor* message) {
    const std::string& name = message->full_name();
    if (name == "google.protobuf.Struct" || name == "google.protobuf.Value" ||
        name == "google.protobuf.ListValue" || name == "google.protobuf.Any")
        return {Place::Kind::free, message, nullptr};
    if (name == "google.protobuf.Timestamp" || name == "google.protobuf.Duration" ||
        name == "google.protobuf.FieldMask" || name == "google.protobuf.Empty" ||
        (name.rfind("google.protobuf.", 0) == 0 && name.size() > 5 &&
         name.compare(name.size() - 5, 5, "Value") == 0))
        return {Place::Kind::value, message, nullptr};
    return {Place::Kind::message, message, nullptr};
}

// The place of one value of `field` (an element, for a repeated field).
Place place_of_value(const gp::FieldDescriptor* field) {
    if (field->type() == gp::FieldDescriptor::TYPE_MESSAGE ||
        field->type() == gp::FieldDescriptor::TYPE_GROUP)
        return place_of_message(field->message_type());
    return {Place::Kind::value, nullptr, field};
}

Place place_of_field(const gp::FieldDescriptor* field) {
    if (field->is_map())
        return {Place::Kind::map, nullptr, field};
    if (field->is_repeated())
        return {Place::Kind::repeated, nullptr, field};
    return place_of_value(field);
}

// The field a pointer token names: its .proto name first, then its JSON name (lowerCamel, or
// the .proto's json_name option).
const gp::FieldDescriptor* find_field(const gp::Descriptor* message, const std::string& token) {
    if (const gp::FieldDescriptor* field = message->FindFieldByName(token))
        return field;
    for (int i = 0; i < message->field_count(); ++i)
        if (message->field(i)->json_name() == token)
            return message->field(i);
    return nullptr;
}

std::string unescape_token(std::string_view token) {
    std::string out;
    for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] == '~' && i + 1 < token.size()) {
            out += token[i + 1] == '1' ? '/' : '~';
            ++i;
        } else {
            out += token[i];
        }
    }
    return out;
}

bool is_index(const std::string& token) {
    if (token.empty() || (token.size() > 1 && token[0] == '0'))
        return false;
    for (char c : token)
        if (c < '0' || c > '9')
            return false;
    return true;
}

std::string field_names(const gp::Descriptor* message) {
    std::string out;
    for (int i = 0; i < message->field_count() && i < 20; ++i)
        out += (i > 0 ? ", " : "") + message->field(i)->name();
    if (message->field_count() > 20)
        out += ", …";
    return out.empty() ? "none" : out;
}

const char* describe(const Place& place) {
    if (place.field != nullptr && place.kind == Place::Kind::value)
        return place.field->type_name();
    return "a value";
}

// Walks `pointer` from `start`, rewriting each field token to its .proto name. Returns the
// problem, or sets `end` to where the pointer leads.
std::optional<std::string> walk(const Place& start, std::string& pointer, Place& end) {
    Place place = start;
    std::string rewritten;
    std::size_t pos = 0;
    while (pos < pointer.size()) {
        // pointer[pos] == '/': validated with the config.
        std::size_t next = pointer.find('/', pos + 1);
        std::string_view raw = std::string_view(pointer).substr(
            pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
        std::string token = unescape_token(raw);
        std::string spelled(raw);
        switch (place.kind) {
            case Place::Kind::free:
                break;
            case Place::Kind::message: {
                const gp::FieldDescriptor* field = find_field(place.message, token);
                if (field == nullptr)
                    return "'" + token + "' is no field of " + place.message->full_name() +
                           " (its fields: " + field_names(place.message) + ")";
                spelled = escape_json_pointer_token(field->name());
                place = place_of_field(field);
                break;
            }
            case Place::Kind::repeated:
                if (!is_index(token))
                    return "'" + token + "': " + place.field->full_name() +
                           " is a repeated field, an array: the next token is an element index";
                place = place_of_value(place.field);
                break;
            case Place::Kind::map:
                place = place_of_value(place.field->message_type()->map_value());
                break;
            case Place::Kind::value:
                return "'" + token + "': " +
                       (place.field != nullptr ? place.field->full_name()
                                               : place.message->full_name()) +
                       " is " + describe(place) + " in JSON, with no fields";
        }
        rewritten += '/';
        rewritten += spelled;
        pos = next == std::string::npos ? pointer.size() : next;
    }
    pointer = rewritten;
    end = place;
    return std::nullopt;
}

// A value that is a `bytes` field (or google.protobuf.BytesValue): base64 in the JSON form.
bool reads_bytes(const Place& place) {
    if (place.kind != Place::Kind::value)
        return false;
    if (place.field != nullptr)
        return place.field->type() == gp::FieldDescriptor::TYPE_BYTES;
    return place.message != nullptr && place.message->full_name() == "google.protobuf.BytesValue";
}

void apply(const Place& root, TargetConfig& target, bool strict, const std::string& path,
           std::vector<ProtobufNameProblem>& problems) {
    for (auto& column : target.columns) {
        if (column.source.kind != ColumnSource::Kind::json_pointer)
            continue;
        std::string pointer = column.source.argument;
        Place end;
        if (auto problem = walk(root, pointer, end)) {
            if (strict)
                problems.push_back(
                    {path + "columns." + column.column, column.source.argument + ": " + *problem});
            continue;
        }
        column.source.argument = pointer;
        column.source.base64 = reads_bytes(end);
    }
    if (target.delete_when) {
        Place end;
        if (auto problem = walk(root, target.delete_when->field, end))
            problems.push_back({path + "delete_when.field", *problem});
    }
    for (std::size_t i = 0; i < target.children.size(); ++i) {
        TargetConfig& child = target.children[i];
        const std::string child_path = path + "children[" + std::to_string(i) + "].";
        Place end;
        if (auto problem = walk(root, child.from, end)) {
            problems.push_back({child_path + "from", child.from + ": " + *problem});
            continue;
        }
        if (end.kind == Place::Kind::free) {
            apply(end, child, strict, child_path, problems);
            continue;
        }
        if (end.kind != Place::Kind::repeated) {
            problems.push_back({child_path + "from", child.from +
                                                         ": not a repeated field (children "
                                                         "are made from an array)"});
            continue;
        }
        apply(place_of_value(end.field), child, strict, child_path, problems);
    }
}

void list_messages(const gp::Descriptor* message, std::vector<std::string>& out) {
    out.push_back(message->full_name());
    for (int i = 0; i < message->nested_type_count(); ++i)
        if (!message->nested_type(i)->options().map_entry())
            list_messages(message->nested_type(i), out);
}

// Collects what DescriptorPool::BuildFileCollectingErrors reports.
class Collector : public gp::DescriptorPool::ErrorCollector {
  public:
    std::string errors;
    void AddError(const std::string& filename, const std::string& element, const gp::Message*,
                  ErrorLocation, const std::string& message) override {
        if (errors.empty())
            errors = filename + ": " + (element.empty() ? "" : element + ": ") + message;
    }
};

}  // namespace

std::shared_ptr<const ProtobufSchema> ProtobufSchema::load(const std::string& path,
                                                           const std::string& message) {
    std::ifstream file(path, std::ios::binary);
    if (!file)
        throw ProtobufSchemaError(ProtobufSchemaError::Key::descriptor_set,
                                  "cannot read '" + path + "'");
    std::ostringstream bytes;
    bytes << file.rdbuf();
    if (file.bad())
        throw ProtobufSchemaError(ProtobufSchemaError::Key::descriptor_set,
                                  "cannot read '" + path + "'");
    return from_bytes(bytes.str(), message, "'" + path + "'");
}

std::shared_ptr<const ProtobufSchema> ProtobufSchema::from_bytes(std::string_view bytes,
                                                                 const std::string& message,
                                                                 const std::string& source) {
    using Key = ProtobufSchemaError::Key;
    gp::FileDescriptorSet set;
    // An empty file parses as an empty set, and so may a few bytes of anything: a set names
    // its files.
    bool named = set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    for (const auto& f : set.file())
        named = named && !f.name().empty();
    if (!named || set.file_size() == 0)
        throw ProtobufSchemaError(
            Key::descriptor_set,
            source +
                " is not a FileDescriptorSet (make one with protoc --include_imports "
                "--descriptor_set_out=FILE your.proto)");
    std::shared_ptr<ProtobufSchema> schema(new ProtobufSchema());
    schema->message_name_ = message;
    schema->digest_ = std::to_string(std::hash<std::string_view>{}(bytes));
    schema->pool_ = std::make_unique<gp::DescriptorPool>();
    // Files are built once their imports are: protoc writes them in that order, other tools
    // may not.
    std::set<std::string> built;
    std::vector<bool> done(static_cast<std::size_t>(set.file_size()), false);
    for (bool progress = true; progress;) {
        progress = false;
        for (int i = 0; i < set.file_size(); ++i) {
            const gp::FileDescriptorProto& proto = set.file(i);
            if (done[static_cast<std::size_t>(i)])
                continue;
            bool ready = true;
            for (const auto& dependency : proto.dependency())
                ready = ready && built.count(dependency) > 0;
            if (!ready)
                continue;
            Collector collector;
            if (schema->pool_->BuildFileCollectingErrors(proto, &collector) == nullptr)
                throw ProtobufSchemaError(Key::descriptor_set, source + ": " + collector.errors);
            built.insert(proto.name());
            done[static_cast<std::size_t>(i)] = true;
            progress = true;
        }
    }
    for (int i = 0; i < set.file_size(); ++i) {
        if (done[static_cast<std::size_t>(i)])
            continue;
        for (const auto& dependency : set.file(i).dependency())
            if (built.count(dependency) == 0)
                throw ProtobufSchemaError(Key::descriptor_set,
                                          source + ": " + set.file(i).name() + " imports " +
                                              dependency +
                                              ", which the set does not hold (make the set "
                                              "with protoc --include_imports)");
    }
    schema->descriptor_ = schema->pool_->FindMessageTypeByName(message);
    if (schema->descriptor_ == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < set.file_size(); ++i) {
            const gp::FileDescriptor* f = schema->pool_->FindFileByName(set.file(i).name());
            if (f == nullptr || f->package() == "google.protobuf")
                continue;
            for (int m = 0; m < f->message_type_count(); ++m)
                list_messages(f->message_type(m), names);
        }
        std::string known;
        for (std::size_t i = 0; i < names.size() && i < 20; ++i)
            known += (i > 0 ? ", " : "") + names[i];
        if (names.size() > 20)
            known += ", …";
        throw ProtobufSchemaError(Key::message,
                                  "'" + message + "' is not a message of " + source +
                                      " (it defines: " + (known.empty() ? "none" : known) +
                                      "; a name is written in full, with its "
                                      "package)");
    }
    schema->factory_ = std::make_unique<gp::DynamicMessageFactory>(schema->pool_.get());
    schema->prototype_ = schema->factory_->GetPrototype(schema->descriptor_);
    return schema;
}

ProtobufSchema::~ProtobufSchema() {
    // The prototypes belong to the factory, which reads the pool's descriptors: factory first.
    factory_.reset();
    pool_.reset();
}

const gp::Message* ProtobufSchema::prototype_of(std::string_view full_name) const {
    const gp::Descriptor* descriptor = pool_->FindMessageTypeByName(std::string(full_name));
    return descriptor == nullptr ? nullptr : factory_->GetPrototype(descriptor);
}

std::vector<ProtobufNameProblem> ProtobufSchema::apply_names(TargetConfig& target,
                                                             bool strict) const {
    std::vector<ProtobufNameProblem> problems;
    apply(place_of_message(descriptor_), target, strict, "", problems);
    return problems;
}

std::optional<std::string> ProtobufSchema::apply_name(std::string& pointer) const {
    Place end;
    return walk(place_of_message(descriptor_), pointer, end);
}

}  // namespace rmq2pg
