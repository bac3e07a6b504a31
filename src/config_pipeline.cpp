// pipelines[i] → PipelineConfig: queue, workers, batch, the target table (or routes) with its
// column mapping, dedupe, dead-lettering and the queue declaration, each checked as it is read.
#include "config_pipeline.h"

#include <set>

#include "json_pointer.h"
#include "protobuf_schema.h"
#include "topic_match.h"

namespace rmq2pg {

namespace {

bool valid_name(const std::string& name) {
    if (name.empty())
        return false;
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

// "schema.table", "table" (schema public) or with double-quoted parts: "My Schema"."T.1".
bool split_table_name(const std::string& text, std::string& schema, std::string& table) {
    std::vector<std::string> parts(1);
    bool quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '"') {
            if (quoted && i + 1 < text.size() && text[i + 1] == '"') {
                parts.back() += '"';
                ++i;
            } else {
                quoted = !quoted;
            }
        } else if (c == '.' && !quoted) {
            parts.emplace_back();
        } else {
            parts.back() += c;
        }
    }
    if (quoted || parts.size() > 2)
        return false;
    for (const auto& p : parts)
        if (p.empty())
            return false;
    if (parts.size() == 2) {
        schema = parts[0];
        table = parts[1];
    } else {
        schema = "public";
        table = parts[0];
    }
    return true;
}

std::optional<ColumnSource> parse_source(const std::string& text, std::string& error,
                                         const TargetConfig* parent) {
    using Kind = ColumnSource::Kind;
    if (parent != nullptr && text == "$index")
        return ColumnSource{Kind::element_index, ""};
    if (parent != nullptr && text.rfind("$parent.", 0) == 0) {
        std::string column = text.substr(8);
        for (const auto& c : parent->columns)
            if (c.column == column)
                return ColumnSource{Kind::parent_column, column};
        error = "'" + text + "': the parent table " + parent->qualified_table() +
                " maps no column '" + column + "'";
        return std::nullopt;
    }
    if (text.empty() || text[0] == '/') {
        if (auto problem = validate_json_pointer(text)) {
            error = "invalid JSON Pointer '" + text + "': " + *problem;
            return std::nullopt;
        }
        return ColumnSource{Kind::json_pointer, text};
    }
    static const std::pair<const char*, Kind> names[] = {
        {"$body", Kind::body},
        {"$routing_key", Kind::routing_key},
        {"$exchange", Kind::exchange},
        {"$message_id", Kind::message_id},
        {"$timestamp", Kind::timestamp},
        {"$content_type", Kind::content_type},
        {"$stream_offset", Kind::stream_offset},
    };
    for (const auto& [name, kind] : names)
        if (text == name)
            return ColumnSource{kind, ""};
    if (text.rfind("$header.", 0) == 0) {
        std::string header = text.substr(8);
        if (header.empty()) {
            error = "'$header.' needs a header name, e.g. $header.tenant";
            return std::nullopt;
        }
        return ColumnSource{Kind::header, header};
    }
    error = "unknown source '" + text +
            "' (a JSON Pointer such as /id, or one of $body, $routing_key, $exchange, "
            "$message_id, $timestamp, $content_type, $stream_offset, $header.NAME" +
            (parent != nullptr ? ", $index, $parent.COLUMN)" : ")");
    return std::nullopt;
}

void read_columns(ConfigReader& r, const YAML::Node& parent, const std::string& path,
                  TargetConfig& pipeline, const TargetConfig* parent_target) {
    YAML::Node node = parent["columns"];
    if (!node.IsDefined())
        return;  // by name: the writer takes the table's columns from the catalog
    if (node.IsNull()) {
        r.problem(node, path, "is empty: omit it to map columns by name, or map some");
        return;
    }
    std::set<std::string> seen;
    if (!r.expect_map(node, path))
        return;
    if (node.size() == 0)
        r.problem(node, path, "must map at least one column");
    for (const auto& entry : node) {
        ColumnMapping column;
        column.column = entry.first.Scalar();
        std::string key = path + "." + column.column;
        const YAML::Node& value = entry.second;
        if (!seen.insert(column.column).second) {
            r.problem(entry.first, key, "column mapped twice");
            continue;
        }
        if (value.IsMap()) {
            r.check_keys(value, key, {"from", "default", "required"});
            auto from = r.required_string(value, "from", key);
            if (!from)
                continue;
            column.source_text = *from;
            column.default_value = r.string(value, "default", key);
            r.boolean(value, "required", key, column.required);
        } else if (value.IsScalar()) {
            auto text = r.expand(value, key);
            if (!text)
                continue;
            column.source_text = *text;
        } else {
            r.problem(value, key,
                      std::string("expected a source such as /id or $body, got ") +
                          ConfigReader::describe(value));
            continue;
        }
        std::string error;
        auto source = parse_source(column.source_text, error, parent_target);
        if (!source) {
            r.problem(value, key, error);
            continue;
        }
        column.source = *source;
        pipeline.columns.push_back(std::move(column));
    }
}

std::vector<AmqpArgument> read_arguments(ConfigReader& r, const YAML::Node& node,
                                         const std::string& path) {
    std::vector<AmqpArgument> out;
    if (!node.IsDefined() || node.IsNull() || !r.expect_map(node, path))
        return out;
    for (const auto& entry : node) {
        AmqpArgument argument;
        argument.name = entry.first.Scalar();
        std::string key = path + "." + argument.name;
        if (!entry.second.IsScalar()) {
            r.problem(entry.second, key, "expected a string, number or boolean");
            continue;
        }
        auto text = r.expand(entry.second, key);
        if (!text)
            continue;
        argument.text = *text;
        std::int64_t number = 0;
        auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), number);
        // A quoted YAML scalar ("1000") stays a string: users quote to mean text.
        bool quoted = entry.second.Tag() == "!";
        if (!quoted && (*text == "true" || *text == "false")) {
            argument.type = AmqpArgument::Type::boolean;
            argument.boolean = *text == "true";
        } else if (!quoted && ec == std::errc() && end == text->data() + text->size()) {
            argument.type = AmqpArgument::Type::integer;
            argument.integer = number;
        }
        out.push_back(argument);
    }
    return out;
}

QueueDeclaration read_declaration(ConfigReader& r, const YAML::Node& node,
                                  const std::string& path) {
    QueueDeclaration d;
    if (!r.expect_map(node, path))
        return d;
    r.check_keys(node, path,
                 {"passive", "durable", "type", "arguments", "dead_letter_exchange", "bindings"});
    r.boolean(node, "passive", path, d.passive);
    r.boolean(node, "durable", path, d.durable);
    r.choice(node, "type", path, d.type, {"classic", "quorum", "stream"});
    if (d.type != "classic" && !d.durable)
        r.problem(node["durable"].IsDefined() ? node["durable"] : node, path + ".durable",
                  d.type + " queues are always durable");
    if (auto dlx = r.string(node, "dead_letter_exchange", path))
        d.dead_letter_exchange = *dlx;
    d.arguments = read_arguments(r, node["arguments"], path + ".arguments");
    if (YAML::Node bindings = node["bindings"]; bindings.IsDefined() && !bindings.IsNull()) {
        if (!bindings.IsSequence()) {
            r.problem(bindings, path + ".bindings",
                      std::string("expected a list, got ") + ConfigReader::describe(bindings));
        } else {
            for (std::size_t i = 0; i < bindings.size(); ++i) {
                std::string bpath = path + ".bindings[" + std::to_string(i) + "]";
                if (!r.expect_map(bindings[i], bpath))
                    continue;
                r.check_keys(bindings[i], bpath, {"exchange", "routing_key", "arguments"});
                BindingConfig binding;
                if (auto exchange = r.required_string(bindings[i], "exchange", bpath))
                    binding.exchange = *exchange;
                if (auto key = r.string(bindings[i], "routing_key", bpath))
                    binding.routing_key = *key;
                binding.arguments =
                    read_arguments(r, bindings[i]["arguments"], bpath + ".arguments");
                d.bindings.push_back(std::move(binding));
            }
        }
    }
    return d;
}

void read_children(ConfigReader& r, const YAML::Node& node, const std::string& path,
                   TargetConfig& parent, int depth);

void read_target(ConfigReader& r, const YAML::Node& node, const std::string& path, TargetConfig& p,
                 bool debezium, const TargetConfig* parent = nullptr, int depth = 0) {
    if (auto table = r.required_string(node, "table", path)) {
        if (!split_table_name(*table, p.table_schema, p.table_name))
            r.problem(node["table"], path + ".table",
                      "'" + *table + "' is not a table name (table, schema.table, \"Quoted\".t)");
    }
    r.choice(node, "mode", path, p.mode,
             {{"insert", WriteMode::insert},
              {"ignore", WriteMode::ignore},
              {"upsert", WriteMode::upsert}});
    p.key = r.string_list(node, "key", path);
    read_columns(r, node, path + ".columns", p, parent);
    // A child's rows come from its array elements and its parent: its columns are mapped.
    if (parent != nullptr && !node["columns"].IsDefined())
        r.problem(node, path + ".columns", "is required for a child table (target column: source)");
    // By name, the key defaults to the table's primary key (read from the catalog).
    if (p.mode != WriteMode::insert && p.key.empty() && !p.columns.empty())
        r.problem(node, path + ".key",
                  std::string("is required by mode ") + to_string(p.mode) +
                      " when columns are mapped (omit columns to use the primary key)");
    for (const auto& key_column : p.key) {
        bool mapped = false;
        for (const auto& c : p.columns)
            mapped = mapped || c.column == key_column;
        if (!mapped && !p.columns.empty())
            r.problem(node["key"], path + ".key",
                      "key column '" + key_column + "' is not one of the mapped columns");
    }
    if (auto version = r.string(node, "version", path)) {
        p.version = *version;
        bool mapped = false;
        for (const auto& c : p.columns)
            mapped = mapped || c.column == p.version;
        if (!mapped && !p.columns.empty() && !debezium)
            r.problem(node["version"], path + ".version",
                      "version column '" + p.version + "' is not one of the mapped columns");
        if (p.mode != WriteMode::upsert)
            r.problem(node["version"], path + ".version", "needs mode: upsert");
    }
    if (YAML::Node dw = node["delete_when"]; dw.IsDefined() && !dw.IsNull()) {
        std::string dpath = path + ".delete_when";
        if (r.expect_map(dw, dpath)) {
            r.check_keys(dw, dpath, {"field", "equals"});
            DeleteRule rule;
            if (auto field = r.required_string(dw, "field", dpath)) {
                rule.field = *field;
                if (rule.field.empty() || rule.field[0] != '/')
                    r.problem(dw["field"], dpath + ".field",
                              "'" + rule.field + "' is not a JSON Pointer such as /op");
                else if (auto problem = validate_json_pointer(rule.field))
                    r.problem(dw["field"], dpath + ".field", *problem);
            }
            if (auto equals = r.required_string(dw, "equals", dpath))
                rule.equals = *equals;
            if (p.mode != WriteMode::upsert)
                r.problem(dw, dpath, "needs mode: upsert");
            p.delete_when = rule;
        }
    }
    read_children(r, node, path, p, depth);
}

// children: each a target of its own whose rows come from one array of the parent's document.
// Two levels (an order, its lines, their serial numbers) cover the aggregates producers send;
// deeper ones would multiply the joins of every replace and delete.
void read_children(ConfigReader& r, const YAML::Node& node, const std::string& path,
                   TargetConfig& parent, int depth) {
    YAML::Node children = node["children"];
    if (!ConfigReader::given(children))
        return;
    std::string cpath = path + ".children";
    if (depth >= 2) {
        r.problem(children, cpath, "children may nest one level only (children of a child)");
        return;
    }
    if (!children.IsSequence() || children.size() == 0) {
        r.problem(children, cpath, "expected a non-empty list of child tables");
        return;
    }
    for (std::size_t i = 0; i < children.size(); ++i) {
        std::string chpath = cpath + "[" + std::to_string(i) + "]";
        if (!r.expect_map(children[i], chpath))
            continue;
        r.check_keys(children[i], chpath,
                     {"table", "from", "mode", "key", "columns", "replace", "children"});
        TargetConfig child;
        if (auto from = r.required_string(children[i], "from", chpath)) {
            child.from = *from;
            if (child.from.empty() || child.from[0] != '/')
                r.problem(children[i]["from"], chpath + ".from",
                          "'" + child.from + "' is not a JSON Pointer such as /lines");
            else if (auto problem = validate_json_pointer(child.from))
                r.problem(children[i]["from"], chpath + ".from", *problem);
        }
        read_target(r, children[i], chpath, child, false, &parent, depth + 1);
        r.boolean(children[i], "replace", chpath, child.replace);
        bool linked = false;
        for (const auto& c : child.columns)
            linked = linked || c.source.kind == ColumnSource::Kind::parent_column;
        if (child.replace && !linked)
            r.problem(children[i]["replace"], chpath + ".replace",
                      "needs a column mapped from $parent.COLUMN: it says which rows are the "
                      "parent's children");
        if (child.replace && parent.mode == WriteMode::insert && depth == 0)
            r.problem(children[i]["replace"], chpath + ".replace",
                      "needs the parent in mode upsert or ignore (an inserted parent has no "
                      "children to replace)");
        parent.children.push_back(std::move(child));
    }
}

// format, on_truncate, schema_evolution: how bodies are read (docs/cdc.md for debezium).
void read_format(ConfigReader& r, const YAML::Node& node, const std::string& path,
                 PipelineConfig& p) {
    r.choice(node, "format", path, p.format,
             {{"json", MessageFormat::json},
              {"debezium", MessageFormat::debezium},
              {"protobuf", MessageFormat::protobuf}});
    r.choice(node, "on_truncate", path, p.on_truncate,
             {{"ignore", OnTruncate::ignore}, {"truncate", OnTruncate::truncate}});
    r.choice(node, "schema_evolution", path, p.schema_evolution,
             {{"none", SchemaEvolution::none}, {"basic", SchemaEvolution::basic}});
    if (p.format != MessageFormat::debezium)
        for (const char* key : {"on_truncate", "schema_evolution"})
            if (node[key].IsDefined())
                r.problem(node[key], path + "." + key, "applies only to format: debezium");
}

// protobuf: { descriptor_set, message }: the schema is loaded here, so --check-config and a
// reload find a wrong file, message or field name before any worker starts.
void read_protobuf(ConfigReader& r, const YAML::Node& node, const std::string& path,
                   PipelineConfig& p) {
    const std::string ppath = path + ".protobuf";
    YAML::Node pb = node["protobuf"];
    if (p.format != MessageFormat::protobuf) {
        if (pb.IsDefined())
            r.problem(pb, ppath, "applies only to format: protobuf");
        return;
    }
    if (!ConfigReader::given(pb)) {
        r.problem(node["format"], ppath,
                  "format: protobuf needs protobuf: { descriptor_set: FILE, message: "
                  "package.Message }");
        return;
    }
    if (!r.expect_map(pb, ppath))
        return;
    r.check_keys(pb, ppath, {"descriptor_set", "message"});
    auto file = r.required_string(pb, "descriptor_set", ppath);
    auto message = r.required_string(pb, "message", ppath);
    if (!file || !message)
        return;
    p.protobuf.descriptor_set = *file;
    p.protobuf.message = *message;
    try {
        p.protobuf.schema = ProtobufSchema::load(*file, *message);
    } catch (const ProtobufSchemaError& e) {
        const bool set = e.key == ProtobufSchemaError::Key::descriptor_set;
        r.problem(pb[set ? "descriptor_set" : "message"],
                  ppath + (set ? ".descriptor_set" : ".message"), e.what());
        return;
    }
    // A changed descriptor set restarts the pipeline on reload, as a changed config does.
    p.fingerprint += "\nprotobuf descriptor set " + p.protobuf.schema->digest();
    auto report = [&](const std::string& prefix, TargetConfig& target) {
        for (const auto& problem : p.protobuf.schema->apply_names(target, true))
            r.problem(node, prefix + "." + problem.key, problem.what);
    };
    if (p.routes.empty())
        report(path, p);
    for (std::size_t i = 0; i < p.routes.size(); ++i)
        report(path + ".routes[" + std::to_string(i) + "]", p.routes[i]);
    if (!p.dedupe.empty() && p.dedupe != "message_id")
        if (auto problem = p.protobuf.schema->apply_name(p.dedupe))
            r.problem(node["dedupe"], path + ".dedupe", *problem);
}

// A change event says itself whether it deletes, and its position in the source's log is the
// version: every target upserts, orders by that position (stored in the `version` column,
// _rmq2pg_version unless named) and keeps tombstones.
void check_debezium_targets(ConfigReader& r, const YAML::Node& node, const std::string& path,
                            PipelineConfig& p) {
    auto check = [&](const YAML::Node& at, const std::string& tpath, TargetConfig& t) {
        if (t.mode != WriteMode::upsert)
            r.problem(at["mode"].IsDefined() ? at["mode"] : at, tpath + ".mode",
                      "format: debezium needs mode: upsert (changes are applied by key)");
        if (at["delete_when"].IsDefined())
            r.problem(at["delete_when"], tpath + ".delete_when",
                      "format: debezium deletes on op \"d\" by itself");
        if (t.version.empty())
            t.version = "_rmq2pg_version";
        t.delete_when = DeleteRule{"/op", "d"};
    };
    if (p.routes.empty())
        check(node, path, p);
    for (std::size_t i = 0; i < p.routes.size(); ++i)
        check(node["routes"][i], path + ".routes[" + std::to_string(i) + "]", p.routes[i]);
    // basic evolves one table whose columns are the fields of its name (docs/cdc.md).
    if (p.schema_evolution == SchemaEvolution::basic) {
        const char* why = !p.routes.empty()     ? "routes"
                          : !p.columns.empty()  ? "columns"
                          : !p.children.empty() ? "children"
                                                : nullptr;
        if (why != nullptr)
            r.problem(node["schema_evolution"], path + ".schema_evolution",
                      std::string("basic evolves one table mapped by name, so it cannot be "
                                  "used with ") +
                          why);
    }
}

// batch: when a batch closes; it must be able to fill within prefetch.
void read_batch(ConfigReader& r, const YAML::Node& node, const std::string& path,
                PipelineConfig& p) {
    if (YAML::Node batch = node["batch"]; batch.IsDefined() && !batch.IsNull()) {
        std::string bpath = path + ".batch";
        if (r.expect_map(batch, bpath)) {
            r.check_keys(batch, bpath, {"max_messages", "max_bytes", "max_delay_ms"});
            r.integer(batch, "max_messages", bpath, p.batch.max_messages, 1, 65535);
            r.integer(batch, "max_bytes", bpath, p.batch.max_bytes, 1, std::int64_t(1) << 31);
            r.integer(batch, "max_delay_ms", bpath, p.batch.max_delay_ms, 0, 3600000);
        }
    }
    if (p.batch.max_messages > static_cast<std::size_t>(p.prefetch)) {
        YAML::Node batch = node["batch"];
        YAML::Node where = batch.IsDefined() && batch.IsMap() && batch["max_messages"].IsDefined()
                               ? batch["max_messages"]
                           : node["prefetch"].IsDefined() ? node["prefetch"]
                                                          : node;
        r.problem(where, path + ".batch.max_messages",
                  std::to_string(p.batch.max_messages) + " exceeds prefetch " +
                      std::to_string(p.prefetch) +
                      ": the broker would never send enough messages to fill a batch");
    }
}

// routes: each a target of its own, tried in order; the pipeline then names no target itself.
void read_routes(ConfigReader& r, const YAML::Node& node, const std::string& path,
                 PipelineConfig& p) {
    YAML::Node routes = node["routes"];
    // With routes, where messages go is said by each route alone.
    for (const char* key :
         {"table", "mode", "key", "columns", "version", "delete_when", "children"})
        if (node[key].IsDefined())
            r.problem(node[key], path + "." + key,
                      "with routes:, this key belongs to each route, not the pipeline");
    if (!routes.IsSequence() || routes.size() == 0) {
        r.problem(routes, path + ".routes", "expected a non-empty list of routes");
    } else {
        for (std::size_t i = 0; i < routes.size(); ++i) {
            std::string rpath = path + ".routes[" + std::to_string(i) + "]";
            TargetConfig route;
            if (!r.expect_map(routes[i], rpath))
                continue;
            r.check_keys(
                routes[i], rpath,
                {"match", "table", "mode", "key", "columns", "version", "delete_when", "children"});
            if (auto match = r.required_string(routes[i], "match", rpath)) {
                route.match = *match;
                if (auto problem = validate_topic_pattern(route.match))
                    r.problem(routes[i]["match"], rpath + ".match",
                              "'" + route.match + "': " + *problem);
            }
            read_target(r, routes[i], rpath, route, p.format == MessageFormat::debezium);
            p.routes.push_back(std::move(route));
        }
    }
}

// `queue:` or `streams:` (exactly one), with `start:` and `lease_s` for streams.
void read_source(ConfigReader& r, const YAML::Node& node, const std::string& path,
                 PipelineConfig& p) {
    bool queue = ConfigReader::given(node["queue"]);
    bool streams = ConfigReader::given(node["streams"]);
    if (queue && streams) {
        r.problem(node["streams"], path + ".streams",
                  "a pipeline reads either a queue or streams: remove 'queue' or 'streams'");
        return;
    }
    if (!streams) {
        if (auto name = r.required_string(node, "queue", path))
            p.queue = *name;
        for (const char* key : {"start", "lease_s"})
            if (ConfigReader::given(node[key]))
                r.problem(node[key], path + "." + key, "applies to streams only (no 'streams:')");
        return;
    }
    p.streams = r.string_list(node, "streams", path);
    std::set<std::string> seen;
    for (std::size_t i = 0; i < p.streams.size(); ++i) {
        const std::string& stream = p.streams[i];
        if (stream.empty() || !seen.insert(stream).second)
            r.problem(
                node["streams"], path + ".streams",
                stream.empty() ? "a stream name is empty" : "'" + stream + "' is listed twice");
    }
    if (p.streams.empty())
        r.problem(node["streams"], path + ".streams", "expected at least one stream");
    if (auto text = r.string(node, "start", path)) {
        std::string error;
        if (auto start = parse_stream_start(*text, error))
            p.start = *start;
        else
            r.problem(node["start"], path + ".start", error);
    }
    // At least 2 s: renewals run every third of it and must fit one database round trip.
    r.integer(node, "lease_s", path, p.lease_s, 2, 3600);
}

// What has no meaning on a stream, and what a stream needs.
void check_stream_pipeline(ConfigReader& r, const YAML::Node& node, const std::string& path,
                           const PipelineConfig& p) {
    if (!p.is_stream()) {
        for (const auto& target : p.targets())
            for (const auto& column : target->columns)
                if (column.source.kind == ColumnSource::Kind::stream_offset)
                    r.problem(node, path + ".columns",
                              "column '" + column.column +
                                  "': $stream_offset needs 'streams:' (a queue has no offsets)");
        return;
    }
    if (p.on_error == OnError::reject)
        r.problem(node["on_error"], path + ".on_error",
                  "'reject' needs a queue's dead-letter exchange; a stream has none: use "
                  "dead_letter (publishes to <stream>.dead) or stop");
    if (p.max_redeliveries > 0)
        r.problem(node["max_redeliveries"], path + ".max_redeliveries",
                  "a stream does not count deliveries; remove it");
    if (p.declare && p.declare->type != "stream" && !p.declare->passive)
        r.problem(
            node["declare"], path + ".declare.type",
            "'" + p.declare->type + "': the streams of a pipeline are declared as type stream");
}

}  // namespace

PipelineConfig read_pipeline(ConfigReader& r, const YAML::Node& node, const std::string& path) {
    PipelineConfig p;
    if (!r.expect_map(node, path))
        return p;
    p.fingerprint = YAML::Dump(node);
    r.check_keys(node, path,
                 {"name",
                  "queue",
                  "format",
                  "on_truncate",
                  "schema_evolution",
                  "workers",
                  "prefetch",
                  "batch",
                  "table",
                  "mode",
                  "key",
                  "columns",
                  "version",
                  "delete_when",
                  "children",
                  "routes",
                  "dedupe",
                  "dedupe_retention_s",
                  "tombstone_retention_s",
                  "on_error",
                  "dead_letter",
                  "max_redeliveries",
                  "declare",
                  "max_message_bytes",
                  "max_inflight_bytes",
                  "streams",
                  "start",
                  "lease_s",
                  "protobuf"});
    if (auto name = r.required_string(node, "name", path)) {
        p.name = *name;
        if (!valid_name(p.name))
            r.problem(node["name"], path + ".name",
                      "'" + p.name + "' may only hold letters, digits, '_', '-' and '.'");
    }
    read_source(r, node, path, p);
    r.integer(node, "workers", path, p.workers, 1, 64);
    // basic.qos carries prefetch_count as a 16-bit number.
    r.integer(node, "prefetch", path, p.prefetch, 1, 65535);
    read_batch(r, node, path, p);
    read_format(r, node, path, p);
    if (ConfigReader::given(node["routes"]))
        read_routes(r, node, path, p);
    else
        read_target(r, node, path, p, p.format == MessageFormat::debezium);
    if (p.format == MessageFormat::debezium)
        check_debezium_targets(r, node, path, p);
    if (auto dedupe = r.string(node, "dedupe", path)) {
        p.dedupe = *dedupe;
        if (p.dedupe != "message_id" && (p.dedupe.empty() || p.dedupe[0] != '/'))
            r.problem(node["dedupe"], path + ".dedupe",
                      "'" + p.dedupe + "' is neither message_id nor a JSON Pointer such as /id");
        else if (auto problem = validate_json_pointer(p.dedupe == "message_id" ? "" : p.dedupe))
            r.problem(node["dedupe"], path + ".dedupe", *problem);
    }
    r.integer(node, "dedupe_retention_s", path, p.dedupe_retention_s, 1, 10LL * 365 * 86400);
    r.integer(node, "tombstone_retention_s", path, p.tombstone_retention_s, 1, 10LL * 365 * 86400);
    r.choice(node, "on_error", path, p.on_error,
             {{"dead_letter", OnError::dead_letter},
              {"reject", OnError::reject},
              {"stop", OnError::stop}});
    if (YAML::Node dl = node["dead_letter"]; dl.IsDefined() && !dl.IsNull()) {
        std::string dpath = path + ".dead_letter";
        if (r.expect_map(dl, dpath)) {
            r.check_keys(dl, dpath, {"exchange", "routing_key"});
            if (auto exchange = r.string(dl, "exchange", dpath))
                p.dead_letter.exchange = *exchange;
            if (auto key = r.string(dl, "routing_key", dpath))
                p.dead_letter.routing_key = *key;
        }
    }
    r.integer(node, "max_redeliveries", path, p.max_redeliveries, 0, 1000000);
    // 1 KiB .. 2 GiB: RabbitMQ's own ceiling for a message is 512 MiB.
    r.integer(node, "max_message_bytes", path, p.max_message_bytes, 1024, std::int64_t(1) << 31);
    r.integer(node, "max_inflight_bytes", path, p.max_inflight_bytes, 1024 * 1024,
              std::int64_t(1) << 40);
    if (YAML::Node declare = node["declare"]; declare.IsDefined() && !declare.IsNull())
        p.declare = read_declaration(r, declare, path + ".declare");
    check_stream_pipeline(r, node, path, p);
    read_protobuf(r, node, path, p);
    return p;
}

}  // namespace rmq2pg
