// YAML → Config: one read_<section> function per top-level key, called in order by read_config.
// Every problem is collected (not just the first) and reported as "file:line: key: what is wrong",
// so one --check-config run shows them all. The YAML walking itself is config_reader.cpp, the
// pipelines config_pipeline.cpp, the credential files config_credentials.cpp.
#include "config.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "config_credentials.h"
#include "config_pipeline.h"
#include "config_reader.h"

namespace rmq2pg {

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? "invalid configuration" : problems.front()),
      problems_(std::move(problems)) {}

bool uses_pg_pool(const Config& config) {
    int workers = 0;
    for (const auto& pipeline : config.pipelines)
        workers += pipeline.workers;
    return workers > config.postgres_pool_size;
}

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

// exchanges: declared (idempotently) before any queue.
void read_exchanges(ConfigReader& r, const YAML::Node& exchanges, Config& config) {
    if (!exchanges.IsSequence()) {
        r.problem(exchanges, "exchanges",
                  std::string("expected a list, got ") + ConfigReader::describe(exchanges));
        return;
    }
    for (std::size_t i = 0; i < exchanges.size(); ++i) {
        std::string path = "exchanges[" + std::to_string(i) + "]";
        if (!r.expect_map(exchanges[i], path))
            continue;
        r.check_keys(exchanges[i], path, {"name", "type", "durable"});
        ExchangeConfig exchange;
        if (auto name = r.required_string(exchanges[i], "name", path))
            exchange.name = *name;
        r.choice(exchanges[i], "type", path, exchange.type,
                 {"direct", "topic", "fanout", "headers"});
        r.boolean(exchanges[i], "durable", path, exchange.durable);
        config.exchanges.push_back(exchange);
    }
}

// amqp: the broker URLs, with amqp.tls and the password of amqp.password_file applied to each.
void read_amqp(ConfigReader& r, const YAML::Node& amqp, Config& config,
               std::string& connection_files) {
    if (!r.expect_map(amqp, "amqp"))
        return;
    r.check_keys(amqp, "amqp", {"urls", "heartbeat_s", "tls", "password_file", "connections"});
    auto urls = r.string_list(amqp, "urls", "amqp");
    if (urls.empty() && !ConfigReader::given(amqp["urls"]))
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
    r.integer(amqp, "connections", "amqp", config.amqp_connections, 0, 10000);
    if (YAML::Node tls = amqp["tls"]; ConfigReader::given(tls))
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

// postgres: the connection string every connection uses (with postgres.password_file's password
// appended) and the deadlines of connecting and writing.
void read_postgres(ConfigReader& r, const YAML::Node& pg, Config& config,
                   std::string& connection_files) {
    if (!r.expect_map(pg, "postgres"))
        return;
    r.check_keys(pg, "postgres",
                 {"url", "password_file", "write_timeout_ms", "connect_timeout_s", "pool_size",
                  "pool_reserve"});
    // 10000: far above any server's max_connections that makes sense for one client.
    r.integer(pg, "pool_size", "postgres", config.postgres_pool_size, 1, 10000);
    r.integer(pg, "pool_reserve", "postgres", config.postgres_pool_reserve, 0, 10000);
    r.integer(pg, "write_timeout_ms", "postgres", config.postgres_write_timeout_ms, 100, 86400000);
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

void read_log(ConfigReader& r, const YAML::Node& log, Config& config) {
    if (!r.expect_map(log, "log"))
        return;
    r.check_keys(log, "log", {"level", "format", "redact_values"});
    r.boolean(log, "redact_values", "log", config.log_redact_values);
    r.choice(log, "format", "log", config.log_format, {"text", "json"});
    r.choice(log, "level", "log", config.log_level,
             {"trace", "debug", "info", "warn", "error", "critical", "off"});
}

void read_http(ConfigReader& r, const YAML::Node& http, Config& config) {
    if (!r.expect_map(http, "http"))
        return;
    r.check_keys(http, "http", {"listen"});
    if (auto listen = r.required_string(http, "listen", "http")) {
        std::string error;
        if (parse_listen_address(*listen, config.http.host, config.http.port, error))
            config.http.listen = *listen;
        else
            r.problem(http["listen"], "http.listen", "'" + *listen + "': " + error);
    }
}

void read_retry(ConfigReader& r, const YAML::Node& retry, Config& config) {
    if (!r.expect_map(retry, "retry"))
        return;
    r.check_keys(retry, "retry", {"initial_ms", "max_ms"});
    r.integer(retry, "initial_ms", "retry", config.retry.initial_ms, 1, 3600000);
    r.integer(retry, "max_ms", "retry", config.retry.max_ms, 1, 3600000);
    if (config.retry.max_ms < config.retry.initial_ms)
        r.problem(retry, "retry.max_ms", "must not be below retry.initial_ms");
}

void read_pipelines(ConfigReader& r, const YAML::Node& pipelines, Config& config) {
    if (!pipelines.IsSequence()) {
        r.problem(pipelines, "pipelines",
                  std::string("expected a list, got ") + ConfigReader::describe(pipelines));
        return;
    }
    if (pipelines.size() == 0) {
        r.problem(pipelines, "pipelines", "must hold at least one pipeline");
        return;
    }
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

// The sections in the order their problems are reported.
Config read_config(ConfigReader& r, const YAML::Node& root, const std::string& source) {
    Config config;
    config.source_file = source;
    if (!root.IsMap()) {
        r.problem(root, "(top level)",
                  std::string("expected a mapping with amqp, postgres and pipelines, got ") +
                      ConfigReader::describe(root));
        return config;
    }
    r.check_keys(root, "",
                 {"amqp", "postgres", "shutdown_timeout_ms", "startup_timeout_s", "log", "http",
                  "retry", "exchanges", "pipelines"});
    if (ConfigReader::given(root["exchanges"]))
        read_exchanges(r, root["exchanges"], config);

    std::string connection_files;  // file_digest of every file the connections read
    if (ConfigReader::given(root["amqp"]))
        read_amqp(r, root["amqp"], config, connection_files);
    else
        r.problem(root, "amqp", "is required (amqp.urls)");
    if (ConfigReader::given(root["postgres"]))
        read_postgres(r, root["postgres"], config, connection_files);
    else
        r.problem(root, "postgres", "is required (postgres.url)");

    r.integer(root, "shutdown_timeout_ms", "", config.shutdown_timeout_ms, 0, 3600000);
    r.integer(root, "startup_timeout_s", "", config.startup_timeout_s, 0, 86400);
    if (ConfigReader::given(root["log"]))
        read_log(r, root["log"], config);
    if (ConfigReader::given(root["http"]))
        read_http(r, root["http"], config);
    if (ConfigReader::given(root["retry"]))
        read_retry(r, root["retry"], config);

    for (const char* key : {"amqp", "postgres", "retry", "exchanges"})
        if (YAML::Node node = root[key]; node.IsDefined())
            config.connection_fingerprint += std::string(key) + ":\n" + YAML::Dump(node) + "\n";
    config.connection_fingerprint += connection_files;

    if (ConfigReader::given(root["pipelines"]))
        read_pipelines(r, root["pipelines"], config);
    else
        r.problem(root, "pipelines", "is required (a list of queue → table flows)");
    return config;
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name) {
    ConfigReader reader(source_name);
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
