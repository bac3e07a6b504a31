// The YAML walker under the config loader: typed getters that expand ${VAR} from the environment
// and collect every problem as "file:line: key: what is wrong" instead of stopping at the first.
// Only the src/config*.cpp files include this header (it brings yaml-cpp).
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rmq2pg {

// Walks the YAML tree, collecting problems with their line and dotted key. A getter leaves its
// target untouched when the key is absent (the default in config.h stays) or wrong (a problem).
class ConfigReader {
  public:
    explicit ConfigReader(std::string file) : file_(std::move(file)) {}

    std::vector<std::string> problems;

    void problem(const YAML::Node& where, const std::string& key, const std::string& what);
    bool expect_map(const YAML::Node& node, const std::string& key);
    // Unknown keys are errors: a typo must not silently fall back to a default.
    void check_keys(const YAML::Node& map, const std::string& path,
                    std::initializer_list<const char*> allowed);

    static std::string join(const std::string& path, const std::string& key);
    static const char* describe(const YAML::Node& node);
    // Defined and not null: the key was given a value.
    static bool given(const YAML::Node& node) { return node.IsDefined() && !node.IsNull(); }

    // ${VAR} and ${VAR:-fallback} expand from the environment in every scalar.
    std::optional<std::string> expand(const YAML::Node& node, const std::string& key);

    std::optional<std::string> string(const YAML::Node& parent, const char* name,
                                      const std::string& path);
    std::optional<std::string> required_string(const YAML::Node& parent, const char* name,
                                               const std::string& path);
    void boolean(const YAML::Node& parent, const char* name, const std::string& path, bool& target);
    // A scalar is a list of one.
    std::vector<std::string> string_list(const YAML::Node& parent, const char* name,
                                         const std::string& path);

    // A whole number within [min, max].
    template <typename Int>
    void integer(const YAML::Node& parent, const char* name, const std::string& path, Int& target,
                 std::int64_t min, std::int64_t max) {
        YAML::Node node = parent[name];
        if (!given(node))
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

    // One of a fixed set of words, each with the value it stands for:
    //   r.choice(node, "mode", path, p.mode, {{"insert", WriteMode::insert}, ...})
    // Anything else is "'x' is not one of insert, ignore, upsert" (the words in table order).
    template <typename T>
    void choice(const YAML::Node& parent, const char* name, const std::string& path, T& target,
                std::initializer_list<std::pair<const char*, T>> options) {
        auto text = string(parent, name, path);
        if (!text)
            return;
        std::string words;
        for (const auto& [word, value] : options) {
            if (*text == word) {
                target = value;
                return;
            }
            words += std::string(words.empty() ? "" : ", ") + word;
        }
        problem(parent[name], join(path, name), "'" + *text + "' is not one of " + words);
    }
    // The same where the word itself is the value.
    void choice(const YAML::Node& parent, const char* name, const std::string& path,
                std::string& target, std::initializer_list<const char*> words);

  private:
    std::string file_;
};

}  // namespace rmq2pg
