// ConfigReader (config_reader.h): problems with file, line and dotted key; ${VAR} expansion;
// the typed getters every section of the loader uses.
#include "config_reader.h"

#include <cstdlib>
#include <sstream>

namespace rmq2pg {

void ConfigReader::problem(const YAML::Node& where, const std::string& key,
                           const std::string& what) {
    std::ostringstream line;
    line << file_;
    if (where.IsDefined() && where.Mark().line >= 0)
        line << ":" << where.Mark().line + 1;
    line << ": " << key << ": " << what;
    problems.push_back(line.str());
}

bool ConfigReader::expect_map(const YAML::Node& node, const std::string& key) {
    if (node.IsMap())
        return true;
    problem(node, key, std::string("expected a mapping, got ") + describe(node));
    return false;
}

void ConfigReader::check_keys(const YAML::Node& map, const std::string& path,
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

std::string ConfigReader::join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

const char* ConfigReader::describe(const YAML::Node& node) {
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

std::optional<std::string> ConfigReader::expand(const YAML::Node& node, const std::string& key) {
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

std::optional<std::string> ConfigReader::string(const YAML::Node& parent, const char* name,
                                                const std::string& path) {
    YAML::Node node = parent[name];
    if (!given(node))
        return std::nullopt;
    std::string key = join(path, name);
    if (!node.IsScalar()) {
        problem(node, key, std::string("expected a string, got ") + describe(node));
        return std::nullopt;
    }
    return expand(node, key);
}

std::optional<std::string> ConfigReader::required_string(const YAML::Node& parent, const char* name,
                                                         const std::string& path) {
    auto value = string(parent, name, path);
    if (!value && !given(parent[name])) {
        problem(parent, join(path, name), "is required");
    } else if (value && value->empty()) {
        problem(parent[name], join(path, name), "must not be empty");
        return std::nullopt;
    }
    return value;
}

void ConfigReader::boolean(const YAML::Node& parent, const char* name, const std::string& path,
                           bool& target) {
    YAML::Node node = parent[name];
    if (!given(node))
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

std::vector<std::string> ConfigReader::string_list(const YAML::Node& parent, const char* name,
                                                   const std::string& path) {
    std::vector<std::string> out;
    YAML::Node node = parent[name];
    if (!given(node))
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
            problem(node[i], item_key, std::string("expected a string, got ") + describe(node[i]));
        } else if (auto value = expand(node[i], item_key)) {
            out.push_back(*value);
        }
    }
    return out;
}

void ConfigReader::choice(const YAML::Node& parent, const char* name, const std::string& path,
                          std::string& target, std::initializer_list<const char*> words) {
    auto text = string(parent, name, path);
    if (!text)
        return;
    std::string list;
    for (const char* word : words) {
        if (*text == word) {
            target = *text;
            return;
        }
        list += std::string(list.empty() ? "" : ", ") + word;
    }
    problem(parent[name], join(path, name), "'" + *text + "' is not one of " + list);
}

}  // namespace rmq2pg
