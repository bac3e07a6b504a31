// YAML → Config. The only file that includes yaml-cpp. Every problem is collected (not just the
// first) and reported as "file:line: key: what is wrong", so one --check-config run shows them all.
#include "config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include "json_pointer.h"
#include "topic_match.h"

namespace rmq2pg {

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? "invalid configuration" : problems.front()),
      problems_(std::move(problems)) {}

const char* to_string(WriteMode mode) {
    switch (mode) {
        case WriteMode::insert:
            return "insert";
        case WriteMode::ignore:
            return "ignore";
        case WriteMode::upsert:
            return "upsert";
    }
    return "?";
}

const char* to_string(OnError on_error) {
    switch (on_error) {
        case OnError::dead_letter:
            return "dead_letter";
        case OnError::reject:
            return "reject";
        case OnError::stop:
            return "stop";
    }
    return "?";
}

namespace {

// Walks the YAML tree, collecting problems with their line and dotted key.
class Reader {
  public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    std::vector<std::string> problems;

    void problem(const YAML::Node& where, const std::string& key, const std::string& what) {
        std::ostringstream line;
        line << file_;
        if (where.IsDefined() && where.Mark().line >= 0)
            line << ":" << where.Mark().line + 1;
        line << ": " << key << ": " << what;
        problems.push_back(line.str());
    }

    bool expect_map(const YAML::Node& node, const std::string& key) {
        if (node.IsMap())
            return true;
        problem(node, key, std::string("expected a mapping, got ") + describe(node));
        return false;
    }

    // Unknown keys are errors: a typo must not silently fall back to a default.
    void check_keys(const YAML::Node& map, const std::string& path,
                    std::initializer_list<const char*> allowed) {
        for (const auto& entry : map) {
            std::string name = entry.first.Scalar();
            bool known = false;
            for (const char* a : allowed)
                known = known || name == a;
            if (!known) {
                std::string list;
                for (const char* a : allowed)
                    list += std::string(list.empty() ? "" : ", ") + a;
                problem(entry.first, join(path, name), "unknown key (known keys: " + list + ")");
            }
        }
    }

    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }

    static const char* describe(const YAML::Node& node) {
        switch (node.Type()) {
            case YAML::NodeType::Map:
                return "a mapping";
            case YAML::NodeType::Sequence:
                return "a list";
            case YAML::NodeType::Scalar:
                return "a scalar";
            case YAML::NodeType::Null:
                return "nothing (null)";
            default:
                return "nothing";
        }
    }

    // ${VAR} and ${VAR:-fallback} expand from the environment in every scalar.
    std::optional<std::string> expand(const YAML::Node& node, const std::string& key) {
        const std::string& in = node.Scalar();
        std::string out;
        std::size_t pos = 0;
        while (true) {
            std::size_t start = in.find("${", pos);
            if (start == std::string::npos)
                break;
            std::size_t end = in.find('}', start);
            if (end == std::string::npos) {
                problem(node, key, "unclosed ${ in '" + in + "'");
                return std::nullopt;
            }
            out.append(in, pos, start - pos);
            std::string name = in.substr(start + 2, end - start - 2);
            std::optional<std::string> fallback;
            if (auto sep = name.find(":-"); sep != std::string::npos) {
                fallback = name.substr(sep + 2);
                name.resize(sep);
            }
            const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
            if (value != nullptr && !(fallback && *value == '\0')) {
                out += value;
            } else if (fallback) {
                out += *fallback;
            } else {
                problem(node, key, "environment variable '" + name + "' is not set");
                return std::nullopt;
            }
            pos = end + 1;
        }
        out.append(in, pos, std::string::npos);
        return out;
    }

    std::optional<std::string> string(const YAML::Node& parent, const char* name,
                                      const std::string& path) {
        YAML::Node node = parent[name];
        if (!node.IsDefined() || node.IsNull())
            return std::nullopt;
        std::string key = join(path, name);
        if (!node.IsScalar()) {
            problem(node, key, std::string("expected a string, got ") + describe(node));
            return std::nullopt;
        }
        return expand(node, key);
    }

    std::optional<std::string> required_string(const YAML::Node& parent, const char* name,
                                               const std::string& path) {
        auto value = string(parent, name, path);
        if (!value && !(parent[name].IsDefined() && !parent[name].IsNull())) {
            problem(parent, join(path, name), "is required");
        } else if (value && value->empty()) {
            problem(parent[name], join(path, name), "must not be empty");
            return std::nullopt;
        }
        return value;
    }

    // A whole number within [min, max]; `unit` only makes the error clearer.
    template <typename Int>
    void integer(const YAML::Node& parent, const char* name, const std::string& path, Int& target,
                 std::int64_t min, std::int64_t max) {
        YAML::Node node = parent[name];
        if (!node.IsDefined() || node.IsNull())
            return;
        std::string key = join(path, name);
        if (!node.IsScalar()) {
            problem(node, key, std::string("expected a whole number, got ") + describe(node));
            return;
        }
        auto text = expand(node, key);
        if (!text)
            return;
        std::int64_t value = 0;
        auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
        if (ec != std::errc() || end != text->data() + text->size()) {
            problem(node, key, "expected a whole number, got '" + *text + "'");
            return;
        }
        if (value < min || value > max) {
            problem(node, key,
                    "value " + *text + " is out of range " + std::to_string(min) + ".." +
                        std::to_string(max));
            return;
        }
        target = static_cast<Int>(value);
    }

    void boolean(const YAML::Node& parent, const char* name, const std::string& path,
                 bool& target) {
        YAML::Node node = parent[name];
        if (!node.IsDefined() || node.IsNull())
            return;
        std::string key = join(path, name);
        auto text = node.IsScalar() ? expand(node, key) : std::nullopt;
        if (text && (*text == "true" || *text == "false")) {
            target = *text == "true";
        } else if (node.IsScalar() && text) {
            problem(node, key, "expected true or false, got '" + *text + "'");
        } else if (!node.IsScalar()) {
            problem(node, key, std::string("expected true or false, got ") + describe(node));
        }
    }

    std::vector<std::string> string_list(const YAML::Node& parent, const char* name,
                                         const std::string& path) {
        std::vector<std::string> out;
        YAML::Node node = parent[name];
        if (!node.IsDefined() || node.IsNull())
            return out;
        std::string key = join(path, name);
        if (node.IsScalar()) {
            if (auto value = expand(node, key))
                out.push_back(*value);
            return out;
        }
        if (!node.IsSequence()) {
            problem(node, key, std::string("expected a list of strings, got ") + describe(node));
            return out;
        }
        for (std::size_t i = 0; i < node.size(); ++i) {
            std::string item_key = key + "[" + std::to_string(i) + "]";
            if (!node[i].IsScalar()) {
                problem(node[i], item_key,
                        std::string("expected a string, got ") + describe(node[i]));
            } else if (auto value = expand(node[i], item_key)) {
                out.push_back(*value);
            }
        }
        return out;
    }

  private:
    std::string file_;
};

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

std::optional<ColumnSource> parse_source(const std::string& text, std::string& error) {
    using Kind = ColumnSource::Kind;
    if (text.empty() || text[0] == '/') {
        if (auto problem = validate_json_pointer(text)) {
            error = "invalid JSON Pointer '" + text + "': " + *problem;
            return std::nullopt;
        }
        return ColumnSource{Kind::json_pointer, text};
    }
    static const std::pair<const char*, Kind> names[] = {
        {"$body", Kind::body},           {"$routing_key", Kind::routing_key},
        {"$exchange", Kind::exchange},   {"$message_id", Kind::message_id},
        {"$timestamp", Kind::timestamp}, {"$content_type", Kind::content_type},
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
            "$message_id, $timestamp, $content_type, $header.NAME)";
    return std::nullopt;
}

void read_columns(Reader& r, const YAML::Node& parent, const std::string& path,
                  TargetConfig& pipeline) {
    YAML::Node node = parent["columns"];
    if (!node.IsDefined() || node.IsNull()) {
        r.problem(node.IsDefined() ? node : parent, path, "is required (target column: source)");
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
                          Reader::describe(value));
            continue;
        }
        std::string error;
        auto source = parse_source(column.source_text, error);
        if (!source) {
            r.problem(value, key, error);
            continue;
        }
        column.source = *source;
        pipeline.columns.push_back(std::move(column));
    }
}

std::vector<AmqpArgument> read_arguments(Reader& r, const YAML::Node& node,
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

QueueDeclaration read_declaration(Reader& r, const YAML::Node& node, const std::string& path) {
    QueueDeclaration d;
    if (!r.expect_map(node, path))
        return d;
    r.check_keys(node, path,
                 {"passive", "durable", "type", "arguments", "dead_letter_exchange", "bindings"});
    r.boolean(node, "passive", path, d.passive);
    r.boolean(node, "durable", path, d.durable);
    if (auto type = r.string(node, "type", path)) {
        if (*type == "classic" || *type == "quorum" || *type == "stream")
            d.type = *type;
        else
            r.problem(node["type"], path + ".type",
                      "'" + *type + "' is not one of classic, quorum, stream");
    }
    if (d.type != "classic" && !d.durable)
        r.problem(node["durable"].IsDefined() ? node["durable"] : node, path + ".durable",
                  d.type + " queues are always durable");
    if (auto dlx = r.string(node, "dead_letter_exchange", path))
        d.dead_letter_exchange = *dlx;
    d.arguments = read_arguments(r, node["arguments"], path + ".arguments");
    if (YAML::Node bindings = node["bindings"]; bindings.IsDefined() && !bindings.IsNull()) {
        if (!bindings.IsSequence()) {
            r.problem(bindings, path + ".bindings",
                      std::string("expected a list, got ") + Reader::describe(bindings));
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

void read_target(Reader& r, const YAML::Node& node, const std::string& path, TargetConfig& p) {
    if (auto table = r.required_string(node, "table", path)) {
        if (!split_table_name(*table, p.table_schema, p.table_name))
            r.problem(node["table"], path + ".table",
                      "'" + *table + "' is not a table name (table, schema.table, \"Quoted\".t)");
    }
    if (auto mode = r.string(node, "mode", path)) {
        if (*mode == "insert")
            p.mode = WriteMode::insert;
        else if (*mode == "ignore")
            p.mode = WriteMode::ignore;
        else if (*mode == "upsert")
            p.mode = WriteMode::upsert;
        else
            r.problem(node["mode"], path + ".mode",
                      "'" + *mode + "' is not one of insert, ignore, upsert");
    }
    p.key = r.string_list(node, "key", path);
    read_columns(r, node, path + ".columns", p);
    if (p.mode != WriteMode::insert && p.key.empty())
        r.problem(node, path + ".key", std::string("is required by mode ") + to_string(p.mode));
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
        if (!mapped)
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
}

PipelineConfig read_pipeline(Reader& r, const YAML::Node& node, const std::string& path) {
    PipelineConfig p;
    if (!r.expect_map(node, path))
        return p;
    p.fingerprint = YAML::Dump(node);
    r.check_keys(node, path,
                 {"name",
                  "queue",
                  "workers",
                  "prefetch",
                  "batch",
                  "table",
                  "mode",
                  "key",
                  "columns",
                  "version",
                  "delete_when",
                  "routes",
                  "dedupe",
                  "dedupe_retention_s",
                  "tombstone_retention_s",
                  "on_error",
                  "dead_letter",
                  "max_redeliveries",
                  "declare",
                  "max_message_bytes",
                  "max_inflight_bytes"});
    if (auto name = r.required_string(node, "name", path)) {
        p.name = *name;
        if (!valid_name(p.name))
            r.problem(node["name"], path + ".name",
                      "'" + p.name + "' may only hold letters, digits, '_', '-' and '.'");
    }
    if (auto queue = r.required_string(node, "queue", path))
        p.queue = *queue;
    r.integer(node, "workers", path, p.workers, 1, 64);
    // basic.qos carries prefetch_count as a 16-bit number.
    r.integer(node, "prefetch", path, p.prefetch, 1, 65535);
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
    if (YAML::Node routes = node["routes"]; routes.IsDefined() && !routes.IsNull()) {
        // With routes, where messages go is said by each route alone.
        for (const char* key : {"table", "mode", "key", "columns", "version", "delete_when"})
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
                    {"match", "table", "mode", "key", "columns", "version", "delete_when"});
                if (auto match = r.required_string(routes[i], "match", rpath)) {
                    route.match = *match;
                    if (auto problem = validate_topic_pattern(route.match))
                        r.problem(routes[i]["match"], rpath + ".match",
                                  "'" + route.match + "': " + *problem);
                }
                read_target(r, routes[i], rpath, route);
                p.routes.push_back(std::move(route));
            }
        }
    } else {
        read_target(r, node, path, p);
    }
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
    if (auto on_error = r.string(node, "on_error", path)) {
        if (*on_error == "dead_letter")
            p.on_error = OnError::dead_letter;
        else if (*on_error == "reject")
            p.on_error = OnError::reject;
        else if (*on_error == "stop")
            p.on_error = OnError::stop;
        else
            r.problem(node["on_error"], path + ".on_error",
                      "'" + *on_error + "' is not one of dead_letter, reject, stop");
    }
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
    return p;
}

// A file named in the config (certificates, keys, password files) is checked at load, when the
// operator is watching, rather than at the first connect. Returns its content, or nullopt with
// the reason in `error`.
std::optional<std::string> read_named_file(const std::string& path, std::string& error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = "cannot read '" + path + "': " + std::strerror(errno);
        return std::nullopt;
    }
    if (S_ISDIR(st.st_mode)) {
        error = "'" + path + "' is a directory, not a file";
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        // A FIFO would block the load, /dev/zero would never end.
        error = "'" + path + "' is not a regular file";
        return std::nullopt;
    }
    // Passwords, certificates and keys are small; a bigger file is a wrong path.
    constexpr off_t kMaxNamedFile = 1 << 20;
    if (st.st_size > kMaxNamedFile) {
        error = "'" + path + "' is larger than 1 MiB: not a password, certificate or key";
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::string content;
    if (in)
        content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.is_open() || in.bad()) {
        error = "cannot read '" + path + "': " + std::strerror(errno);
        return std::nullopt;
    }
    return content;
}

// A password file holds the password alone; the newline that `echo` or an editor leaves at
// its end is not part of it (a password ending in a newline could not be typed anyway).
std::optional<std::string> read_password_file(const std::string& path, std::string& error) {
    auto content = read_named_file(path, error);
    if (!content)
        return std::nullopt;
    while (!content->empty() && (content->back() == '\n' || content->back() == '\r'))
        content->pop_back();
    if (content->empty()) {
        error = "'" + path + "' is empty";
        return std::nullopt;
    }
    return content;
}

// What a reload compares for a file the connections read: its content, hashed so no secret is
// kept twice. The file names alone would miss a rotated certificate or password.
std::string file_digest(const std::string& path, const std::string& content) {
    return path + " " + std::to_string(std::hash<std::string>{}(content)) + "\n";
}

void read_amqp_tls(Reader& r, const YAML::Node& tls, AmqpTlsOptions& options,
                   std::string& file_digests) {
    if (!r.expect_map(tls, "amqp.tls"))
        return;
    r.check_keys(tls, "amqp.tls",
                 {"ca_file", "cert_file", "key_file", "verify_peer", "verify_hostname"});
    std::pair<const char*, std::string*> files[] = {{"ca_file", &options.ca_file},
                                                    {"cert_file", &options.cert_file},
                                                    {"key_file", &options.key_file}};
    bool given[3] = {false, false, false};
    for (std::size_t i = 0; i < 3; ++i) {
        auto path = r.string(tls, files[i].first, "amqp.tls");
        if (!path || path->empty())  // "" (e.g. "${CA_FILE:-}") means not set
            continue;
        given[i] = true;
        std::string error;
        if (auto content = read_named_file(*path, error)) {
            *files[i].second = *path;
            file_digests += file_digest(*path, *content);
        } else
            r.problem(tls[files[i].first], std::string("amqp.tls.") + files[i].first, error);
    }
    if (given[1] != given[2])
        r.problem(tls, given[1] ? "amqp.tls.key_file" : "amqp.tls.cert_file",
                  "cert_file and key_file go together (the client certificate and its key)");
    r.boolean(tls, "verify_peer", "amqp.tls", options.verify_peer);
    r.boolean(tls, "verify_hostname", "amqp.tls", options.verify_hostname);
}

// "host:port", "[v6]:port": a host name or address and a port 1–65535, nothing more.
bool parse_listen_address(const std::string& text, std::string& host, int& port,
                          std::string& error) {
    const char* expected = "expected host:port, e.g. 127.0.0.1:9187 or [::1]:9187";
    std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        error = expected;
        return false;
    }
    std::string h = text.substr(0, colon), p = text.substr(colon + 1);
    if (h.front() == '[') {
        if (h.size() < 3 || h.back() != ']' ||
            h.find_first_not_of("0123456789abcdefABCDEF:.", 1) != h.size() - 1) {
            error = "'" + h + "' is not a bracketed IPv6 address";
            return false;
        }
        h = h.substr(1, h.size() - 2);
    } else if (h.find(':') != std::string::npos) {
        error = "IPv6 addresses need brackets: [" + h + "]:" + p;
        return false;
    } else {
        for (char c : h)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
                error = "'" + h + "' is not a host name or address";
                return false;
            }
    }
    int value = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value < 1 ||
        value > 65535) {
        error = "port '" + p + "' is not a number in 1..65535";
        return false;
    }
    host = h;
    port = value;
    return true;
}

Config read_config(Reader& r, const YAML::Node& root, const std::string& source) {
    Config config;
    config.source_file = source;
    if (!root.IsMap()) {
        r.problem(root, "(top level)",
                  std::string("expected a mapping with amqp, postgres and pipelines, got ") +
                      Reader::describe(root));
        return config;
    }
    r.check_keys(root, "",
                 {"amqp", "postgres", "shutdown_timeout_ms", "startup_timeout_s", "log", "http",
                  "retry", "exchanges", "pipelines"});
    if (YAML::Node exchanges = root["exchanges"]; exchanges.IsDefined() && !exchanges.IsNull()) {
        if (!exchanges.IsSequence()) {
            r.problem(exchanges, "exchanges",
                      std::string("expected a list, got ") + Reader::describe(exchanges));
        } else {
            for (std::size_t i = 0; i < exchanges.size(); ++i) {
                std::string path = "exchanges[" + std::to_string(i) + "]";
                if (!r.expect_map(exchanges[i], path))
                    continue;
                r.check_keys(exchanges[i], path, {"name", "type", "durable"});
                ExchangeConfig exchange;
                if (auto name = r.required_string(exchanges[i], "name", path))
                    exchange.name = *name;
                if (auto type = r.string(exchanges[i], "type", path)) {
                    if (*type == "direct" || *type == "topic" || *type == "fanout" ||
                        *type == "headers")
                        exchange.type = *type;
                    else
                        r.problem(exchanges[i]["type"], path + ".type",
                                  "'" + *type + "' is not one of direct, topic, fanout, headers");
                }
                r.boolean(exchanges[i], "durable", path, exchange.durable);
                config.exchanges.push_back(exchange);
            }
        }
    }

    std::string connection_files;  // file_digest of every file the connections read
    YAML::Node amqp = root["amqp"];
    if (!amqp.IsDefined() || amqp.IsNull()) {
        r.problem(root, "amqp", "is required (amqp.urls)");
    } else if (r.expect_map(amqp, "amqp")) {
        r.check_keys(amqp, "amqp", {"urls", "heartbeat_s", "tls", "password_file"});
        auto urls = r.string_list(amqp, "urls", "amqp");
        if (urls.empty() && !(amqp["urls"].IsDefined() && !amqp["urls"].IsNull()))
            r.problem(amqp, "amqp.urls", "is required (one or more amqp:// URLs)");
        else if (urls.empty() && amqp["urls"].IsSequence())
            r.problem(amqp["urls"], "amqp.urls", "must list at least one amqp:// URL");
        for (std::size_t i = 0; i < urls.size(); ++i) {
            std::string error;
            if (auto url = parse_amqp_url(urls[i], error)) {
                config.amqp_urls.push_back(*url);
            } else {
                YAML::Node where = amqp["urls"].IsSequence() ? amqp["urls"][i] : amqp["urls"];
                r.problem(where, "amqp.urls[" + std::to_string(i) + "]",
                          "'" + mask_url_password(urls[i]) + "': " + error);
            }
        }
        r.integer(amqp, "heartbeat_s", "amqp", config.heartbeat_s, 0, 3600);
        if (YAML::Node tls = amqp["tls"]; tls.IsDefined() && !tls.IsNull())
            read_amqp_tls(r, tls, config.amqp_tls, connection_files);
        std::optional<std::string> password;
        if (auto file = r.string(amqp, "password_file", "amqp"); file && !file->empty()) {
            std::string error;
            password = read_password_file(*file, error);
            if (password) {
                config.amqp_password_file = *file;
                connection_files += file_digest(*file, *password);
            } else
                r.problem(amqp["password_file"], "amqp.password_file", error);
        }
        for (auto& url : config.amqp_urls) {
            url.tls_options = config.amqp_tls;
            if (password)
                url.password = *password;
        }
    }

    YAML::Node pg = root["postgres"];
    if (!pg.IsDefined() || pg.IsNull()) {
        r.problem(root, "postgres", "is required (postgres.url)");
    } else if (r.expect_map(pg, "postgres")) {
        r.check_keys(pg, "postgres",
                     {"url", "password_file", "write_timeout_ms", "connect_timeout_s"});
        r.integer(pg, "write_timeout_ms", "postgres", config.postgres_write_timeout_ms, 100,
                  86400000);
        r.integer(pg, "connect_timeout_s", "postgres", config.postgres_connect_timeout_s, 1, 3600);
        if (auto url = r.required_string(pg, "url", "postgres"))
            config.postgres_url = *url;
        if (auto file = r.string(pg, "password_file", "postgres"); file && !file->empty()) {
            std::string error;
            if (auto password = read_password_file(*file, error)) {
                config.postgres_password_file = *file;
                connection_files += file_digest(*file, *password);
                // Appended to the connection string every connection uses; the logged form goes
                // through mask_url_password, which hides it.
                if (!config.postgres_url.empty())
                    config.postgres_url = append_libpq_password(config.postgres_url, *password);
            } else {
                r.problem(pg["password_file"], "postgres.password_file", error);
            }
        }
    }

    r.integer(root, "shutdown_timeout_ms", "", config.shutdown_timeout_ms, 0, 3600000);
    r.integer(root, "startup_timeout_s", "", config.startup_timeout_s, 0, 86400);

    if (YAML::Node log = root["log"]; log.IsDefined() && !log.IsNull()) {
        if (r.expect_map(log, "log")) {
            r.check_keys(log, "log", {"level", "format", "redact_values"});
            r.boolean(log, "redact_values", "log", config.log_redact_values);
            if (auto format = r.string(log, "format", "log")) {
                if (*format == "text" || *format == "json")
                    config.log_format = *format;
                else
                    r.problem(log["format"], "log.format",
                              "'" + *format + "' is not one of text, json");
            }
            if (auto level = r.string(log, "level", "log")) {
                static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                                             "error", "critical", "off"};
                if (levels.count(*level) != 0)
                    config.log_level = *level;
                else
                    r.problem(log["level"], "log.level",
                              "'" + *level +
                                  "' is not one of trace, debug, info, warn, error, critical, off");
            }
        }
    }
    if (YAML::Node http = root["http"]; http.IsDefined() && !http.IsNull()) {
        if (r.expect_map(http, "http")) {
            r.check_keys(http, "http", {"listen"});
            if (auto listen = r.required_string(http, "listen", "http")) {
                std::string error;
                if (parse_listen_address(*listen, config.http.host, config.http.port, error))
                    config.http.listen = *listen;
                else
                    r.problem(http["listen"], "http.listen", "'" + *listen + "': " + error);
            }
        }
    }
    if (YAML::Node retry = root["retry"]; retry.IsDefined() && !retry.IsNull()) {
        if (r.expect_map(retry, "retry")) {
            r.check_keys(retry, "retry", {"initial_ms", "max_ms"});
            r.integer(retry, "initial_ms", "retry", config.retry.initial_ms, 1, 3600000);
            r.integer(retry, "max_ms", "retry", config.retry.max_ms, 1, 3600000);
            if (config.retry.max_ms < config.retry.initial_ms)
                r.problem(retry, "retry.max_ms", "must not be below retry.initial_ms");
        }
    }

    for (const char* key : {"amqp", "postgres", "retry", "exchanges"})
        if (YAML::Node node = root[key]; node.IsDefined())
            config.connection_fingerprint += std::string(key) + ":\n" + YAML::Dump(node) + "\n";
    config.connection_fingerprint += connection_files;

    YAML::Node pipelines = root["pipelines"];
    if (!pipelines.IsDefined() || pipelines.IsNull()) {
        r.problem(root, "pipelines", "is required (a list of queue → table flows)");
    } else if (!pipelines.IsSequence()) {
        r.problem(pipelines, "pipelines",
                  std::string("expected a list, got ") + Reader::describe(pipelines));
    } else if (pipelines.size() == 0) {
        r.problem(pipelines, "pipelines", "must hold at least one pipeline");
    } else {
        std::set<std::string> names;
        for (std::size_t i = 0; i < pipelines.size(); ++i) {
            std::string path = "pipelines[" + std::to_string(i) + "]";
            PipelineConfig p = read_pipeline(r, pipelines[i], path);
            if (!p.name.empty() && !names.insert(p.name).second)
                r.problem(pipelines[i]["name"], path + ".name",
                          "'" + p.name + "' is used by another pipeline");
            config.pipelines.push_back(std::move(p));
        }
    }
    return config;
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name) {
    Reader reader(source_name);
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        std::ostringstream line;
        line << source_name << ":" << e.mark.line + 1 << ": (yaml): " << e.msg;
        throw ConfigError({line.str()});
    }
    Config config = read_config(reader, root, source_name);
    if (!reader.problems.empty())
        throw ConfigError(std::move(reader.problems));
    return config;
}

Config load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ConfigError({path + ": cannot be read: " + std::strerror(errno)});
    std::ostringstream text;
    text << in.rdbuf();
    return load_config_text(text.str(), path);
}

}  // namespace rmq2pg
