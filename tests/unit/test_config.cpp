// Config loading: the contract example, defaults, ${VAR} expansion, and one error line
// ("file:line: key: what is wrong") for each kind of malformed file.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "config.h"

using rmq2pg::Config;
using rmq2pg::ConfigError;
using rmq2pg::load_config_text;
using Kind = rmq2pg::ColumnSource::Kind;

namespace {

// Joins lines with '\n' (and a final one), so line N of the file is element N-1.
std::string lines(std::initializer_list<const char*> ls) {
    std::string out;
    for (const char* l : ls) {
        out += l;
        out += '\n';
    }
    return out;
}

const char* const kContractExample = R"(amqp:
  urls: ["amqp://guest:guest@127.0.0.1:5672/"]
  heartbeat_s: 30
postgres:
  url: "postgresql://rmq2pg@127.0.0.1:5432/app"
shutdown_timeout_ms: 10000
log: { level: info }
pipelines:
  - name: orders
    queue: orders
    workers: 2
    prefetch: 2000
    batch: { max_messages: 1000, max_bytes: 4194304, max_delay_ms: 50 }
    table: public.orders
    mode: insert
    key: [id]
    columns:
      id: /id
      account: /account
      amount: /amount
      payload: $body
      routing_key: $routing_key
      message_id: $message_id
)";

// Lines 1-9 of a minimal valid file; `extra` lines follow from line 10. Extra lines indented by
// four spaces belong to the pipeline, unindented ones are top-level keys.
std::string minimal_with(std::initializer_list<const char*> extra) {
    std::string out = lines({
        "amqp:",                     // 1
        "  urls: [\"amqp://h/\"]",   // 2
        "postgres:",                 // 3
        "  url: postgresql://h/db",  // 4
        "pipelines:",                // 5
        "  - name: p",               // 6
        "    queue: q",              // 7
        "    table: t",              // 8
        "    columns: {id: /id}",    // 9
    });
    for (const char* l : extra) {
        out += l;
        out += '\n';
    }
    return out;
}

// Everything but the amqp section (postgres at line N+1 when amqp takes N lines).
const char* const kAfterAmqp =
    "postgres:\n"
    "  url: postgresql://h/db\n"
    "pipelines:\n"
    "  - {name: p, queue: q, table: t, columns: {id: /id}}\n";

// amqp + postgres (lines 1-4), pipelines follow from line 5.
const char* const kHead =
    "amqp:\n"
    "  urls: [\"amqp://h/\"]\n"
    "postgres:\n"
    "  url: postgresql://h/db\n";

std::vector<std::string> problems_of(const std::string& yaml) {
    try {
        load_config_text(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.problems();
    }
    return {};
}

std::string joined(const std::vector<std::string>& problems) {
    std::string out;
    for (const auto& p : problems)
        out += "  " + p + "\n";
    return out;
}

// Unknown-key cases check the start of the "(known keys: ...)" list only, so adding a key to
// the schema does not break them.
struct BadCase {
    const char* name;
    std::string yaml;
    const char* expected;  // substring of one problem line
    int line;              // that line must start with "test.yaml:<line>: "
};

}  // namespace

TEST_CASE("the contract example loads with every field as written", "[config]") {
    Config c = load_config_text(kContractExample, "contract.yaml");

    CHECK(c.source_file == "contract.yaml");
    REQUIRE(c.amqp_urls.size() == 1);
    CHECK(c.amqp_urls[0].host == "127.0.0.1");
    CHECK(c.amqp_urls[0].port == 5672);
    CHECK(c.amqp_urls[0].user == "guest");
    CHECK(c.amqp_urls[0].password == "guest");
    CHECK(c.amqp_urls[0].vhost == "/");
    CHECK_FALSE(c.amqp_urls[0].tls);
    CHECK(c.amqp_urls[0].heartbeat_s == -1);
    CHECK(c.heartbeat_s == 30);
    CHECK(c.postgres_url == "postgresql://rmq2pg@127.0.0.1:5432/app");
    CHECK(c.shutdown_timeout_ms == 10000);
    CHECK(c.log_level == "info");

    REQUIRE(c.pipelines.size() == 1);
    const auto& p = c.pipelines[0];
    CHECK(p.name == "orders");
    CHECK(p.queue == "orders");
    CHECK(p.workers == 2);
    CHECK(p.prefetch == 2000);
    CHECK(p.batch.max_messages == 1000);
    CHECK(p.batch.max_bytes == 4194304);
    CHECK(p.batch.max_delay_ms == 50);
    CHECK(p.table_schema == "public");
    CHECK(p.table_name == "orders");
    CHECK(p.qualified_table() == "public.orders");
    CHECK(p.mode == rmq2pg::WriteMode::insert);
    CHECK(p.key == std::vector<std::string>{"id"});

    SECTION("columns keep the file's order and their sources") {
        REQUIRE(p.columns.size() == 6);
        struct Expected {
            const char* column;
            const char* text;
            Kind kind;
            const char* argument;
        };
        const Expected expected[] = {
            {"id", "/id", Kind::json_pointer, "/id"},
            {"account", "/account", Kind::json_pointer, "/account"},
            {"amount", "/amount", Kind::json_pointer, "/amount"},
            {"payload", "$body", Kind::body, ""},
            {"routing_key", "$routing_key", Kind::routing_key, ""},
            {"message_id", "$message_id", Kind::message_id, ""},
        };
        for (std::size_t i = 0; i < 6; ++i) {
            INFO("column " << i);
            CHECK(p.columns[i].column == expected[i].column);
            CHECK(p.columns[i].source_text == expected[i].text);
            CHECK(p.columns[i].source.kind == expected[i].kind);
            CHECK(p.columns[i].source.argument == expected[i].argument);
            CHECK_FALSE(p.columns[i].default_value.has_value());
            CHECK_FALSE(p.columns[i].required);
        }
    }

    SECTION("keys the example leaves out take their defaults") {
        CHECK(c.startup_timeout_s == 0);
        CHECK(c.retry.initial_ms == 100);
        CHECK(c.retry.max_ms == 30000);
        CHECK(p.on_error == rmq2pg::OnError::dead_letter);
        CHECK(p.dead_letter.exchange.empty());
        CHECK(p.dead_letter.routing_key.empty());
        CHECK(p.declares_dead_letter_queue());
        CHECK(p.dead_letter_routing_key() == "orders.dead");
        CHECK(p.max_redeliveries == 0);
    }
}

TEST_CASE("a minimal config gets every default", "[config]") {
    Config c = load_config_text(minimal_with({}), "min.yaml");
    REQUIRE(c.amqp_urls.size() == 1);
    CHECK(c.amqp_urls[0].host == "h");
    CHECK(c.amqp_urls[0].port == 5672);
    CHECK(c.amqp_urls[0].vhost == "/");
    CHECK(c.heartbeat_s == 30);
    CHECK(c.postgres_url == "postgresql://h/db");
    CHECK(c.shutdown_timeout_ms == 10000);
    CHECK(c.startup_timeout_s == 0);
    CHECK(c.log_level == "info");
    CHECK(c.retry.initial_ms == 100);
    CHECK(c.retry.max_ms == 30000);
    REQUIRE(c.pipelines.size() == 1);
    const auto& p = c.pipelines[0];
    CHECK(p.name == "p");
    CHECK(p.queue == "q");
    CHECK(p.workers == 1);
    CHECK(p.prefetch == 2000);
    CHECK(p.batch.max_messages == 1000);
    CHECK(p.batch.max_bytes == 4u * 1024 * 1024);
    CHECK(p.batch.max_delay_ms == 50);
    CHECK(p.table_schema == "public");
    CHECK(p.table_name == "t");
    CHECK(p.mode == rmq2pg::WriteMode::insert);
    CHECK(p.key.empty());
    REQUIRE(p.columns.size() == 1);
    CHECK(p.columns[0].source.kind == Kind::json_pointer);
    CHECK(p.on_error == rmq2pg::OnError::dead_letter);
    CHECK(p.dead_letter_routing_key() == "q.dead");
    CHECK(p.max_redeliveries == 0);
}

TEST_CASE("a partly given batch keeps the defaults of the keys it leaves out", "[config]") {
    Config c = load_config_text(minimal_with({"    batch: {max_delay_ms: 5}"}), "t.yaml");
    CHECK(c.pipelines[0].batch.max_delay_ms == 5);
    CHECK(c.pipelines[0].batch.max_messages == 1000);
    CHECK(c.pipelines[0].batch.max_bytes == 4u * 1024 * 1024);
}

TEST_CASE("every optional key is read when given", "[config]") {
    const std::string yaml = lines({
        "amqp:",
        "  urls:",
        "    - amqp://a:b@one:5673/prod?heartbeat=5",
        "    - amqps://two",
        "  heartbeat_s: 0",
        "postgres: {url: \"host=db password=secret\"}",
        "shutdown_timeout_ms: 0",
        "startup_timeout_s: 86400",
        "log: {level: debug}",
        "retry: {initial_ms: 50, max_ms: 50}",
        "pipelines:",
        "  - name: a.b-c_1",
        "    queue: events",
        "    workers: 64",
        "    prefetch: 65535",
        "    batch: {max_messages: 65535, max_bytes: 1, max_delay_ms: 0}",
        "    table: '\"My Schema\".\"T.1\"'",
        "    mode: upsert",
        "    key: [id, tenant]",
        "    columns:",
        "      id: {from: /id, required: true}",
        "      tenant: $header.tenant",
        "      currency: {from: /currency, default: EUR, required: false}",
        "      ex: $exchange",
        "      ts: $timestamp",
        "      ct: $content_type",
        "      doc: \"\"",
        "      odd: /a~1b/~0c",
        "    on_error: reject",
        "    dead_letter: {exchange: dlx, routing_key: events.bad}",
        "    max_redeliveries: 10",
        "  - name: second",
        "    queue: other",
        "    table: s.t2",
        "    mode: ignore",
        "    key: id",
        "    columns: {id: /id}",
        "    on_error: stop",
    });
    Config c = load_config_text(yaml, "full.yaml");
    REQUIRE(c.amqp_urls.size() == 2);
    CHECK(c.amqp_urls[0].host == "one");
    CHECK(c.amqp_urls[0].port == 5673);
    CHECK(c.amqp_urls[0].user == "a");
    CHECK(c.amqp_urls[0].password == "b");
    CHECK(c.amqp_urls[0].vhost == "prod");
    CHECK(c.amqp_urls[0].heartbeat_s == 5);
    CHECK(c.amqp_urls[1].tls);
    CHECK(c.amqp_urls[1].port == 5671);
    CHECK(c.heartbeat_s == 0);
    CHECK(c.postgres_url == "host=db password=secret");
    CHECK(c.shutdown_timeout_ms == 0);
    CHECK(c.startup_timeout_s == 86400);
    CHECK(c.log_level == "debug");
    CHECK(c.retry.initial_ms == 50);
    CHECK(c.retry.max_ms == 50);
    REQUIRE(c.pipelines.size() == 2);

    const auto& p = c.pipelines[0];
    CHECK(p.name == "a.b-c_1");
    CHECK(p.workers == 64);
    CHECK(p.prefetch == 65535);
    CHECK(p.batch.max_messages == 65535);
    CHECK(p.batch.max_bytes == 1);
    CHECK(p.batch.max_delay_ms == 0);
    CHECK(p.table_schema == "My Schema");
    CHECK(p.table_name == "T.1");
    CHECK(p.mode == rmq2pg::WriteMode::upsert);
    CHECK(p.key == std::vector<std::string>{"id", "tenant"});
    REQUIRE(p.columns.size() == 8);
    CHECK(p.columns[0].required);
    CHECK_FALSE(p.columns[0].default_value.has_value());
    CHECK(p.columns[0].source_text == "/id");
    CHECK(p.columns[1].source.kind == Kind::header);
    CHECK(p.columns[1].source.argument == "tenant");
    CHECK(p.columns[2].default_value == std::optional<std::string>("EUR"));
    CHECK_FALSE(p.columns[2].required);
    CHECK(p.columns[3].source.kind == Kind::exchange);
    CHECK(p.columns[4].source.kind == Kind::timestamp);
    CHECK(p.columns[5].source.kind == Kind::content_type);
    CHECK(p.columns[6].source.kind == Kind::json_pointer);  // "" = the whole document
    CHECK(p.columns[6].source.argument.empty());
    CHECK(p.columns[7].source.argument == "/a~1b/~0c");
    CHECK(p.on_error == rmq2pg::OnError::reject);
    CHECK(p.dead_letter.exchange == "dlx");
    CHECK_FALSE(p.declares_dead_letter_queue());
    CHECK(p.dead_letter_routing_key() == "events.bad");
    CHECK(p.max_redeliveries == 10);

    const auto& q = c.pipelines[1];
    CHECK(q.table_schema == "s");
    CHECK(q.table_name == "t2");
    CHECK(q.mode == rmq2pg::WriteMode::ignore);
    CHECK(q.key == std::vector<std::string>{"id"});  // a single string is a one-item list
    CHECK(q.on_error == rmq2pg::OnError::stop);
}

TEST_CASE("${VAR} and ${VAR:-default} expand from the environment", "[config]") {
    ::setenv("RMQ2PG_T_PG", "postgresql://env@db/app", 1);
    ::setenv("RMQ2PG_T_USER", "alice", 1);
    ::setenv("RMQ2PG_T_PASS", "s3cret", 1);
    ::setenv("RMQ2PG_T_WORKERS", "3", 1);
    ::setenv("RMQ2PG_T_EMPTY", "", 1);
    ::unsetenv("RMQ2PG_T_UNSET");

    const std::string yaml = lines({
        "amqp:",
        "  urls: [\"amqp://${RMQ2PG_T_USER}:${RMQ2PG_T_PASS}@${RMQ2PG_T_UNSET:-rabbit}/\"]",
        "postgres:",
        "  url: ${RMQ2PG_T_PG}",
        "log: {level: \"${RMQ2PG_T_UNSET:-warn}\"}",
        "pipelines:",
        "  - name: p",
        "    queue: \"${RMQ2PG_T_EMPTY:-fallback_q}\"",
        "    workers: ${RMQ2PG_T_WORKERS}",
        "    table: t${RMQ2PG_T_EMPTY}",
        "    columns: {id: /id}",
    });
    Config c = load_config_text(yaml, "env.yaml");
    CHECK(c.postgres_url == "postgresql://env@db/app");
    REQUIRE(c.amqp_urls.size() == 1);
    CHECK(c.amqp_urls[0].user == "alice");
    CHECK(c.amqp_urls[0].password == "s3cret");
    CHECK(c.amqp_urls[0].host == "rabbit");
    CHECK(c.log_level == "warn");
    CHECK(c.pipelines[0].queue == "fallback_q");  // set but empty → the fallback
    CHECK(c.pipelines[0].workers == 3);
    CHECK(c.pipelines[0].table_name == "t");  // set but empty, no fallback → ""

    SECTION("an expanded value is validated like a literal one") {
        ::setenv("RMQ2PG_T_WORKERS", "100", 1);
        auto problems = problems_of(yaml);
        INFO(joined(problems));
        REQUIRE(problems.size() == 1);
        CHECK(problems[0] == "test.yaml:9: pipelines[0].workers: value 100 is out of range 1..64");
    }
    SECTION("a value with no ${ is left alone, including a lone $") {
        Config d = load_config_text(minimal_with({"    dead_letter: {routing_key: a$b}"}), "x");
        CHECK(d.pipelines[0].dead_letter.routing_key == "a$b");
    }
    ::unsetenv("RMQ2PG_T_PG");
    ::unsetenv("RMQ2PG_T_USER");
    ::unsetenv("RMQ2PG_T_PASS");
    ::unsetenv("RMQ2PG_T_WORKERS");
    ::unsetenv("RMQ2PG_T_EMPTY");
}

TEST_CASE("each malformed config is rejected with its own error line", "[config]") {
    ::unsetenv("RMQ2PG_T_MISSING");
    const std::vector<BadCase> cases = {
        // --- unparseable / wrong top level -------------------------------------------------
        {"unparseable YAML", "amqp: [\n", "(yaml):", 2},
        {"unparseable YAML on a later line",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres: {url: x", "pipelines: []"}),
         "(yaml):", 4},
        {"a top level that is a list", lines({"- amqp", "- postgres"}),
         "(top level): expected a mapping with amqp, postgres and pipelines, got a list", 1},
        {"a top level that is a scalar", "just text\n",
         "(top level): expected a mapping with amqp, postgres and pipelines, got a scalar", 1},
        {"unknown top-level key", minimal_with({"colour: blue"}),
         "colour: unknown key (known keys: amqp, postgres, ", 10},
        {"string where a number is expected (top level)",
         minimal_with({"shutdown_timeout_ms: soon"}),
         "shutdown_timeout_ms: expected a whole number, got 'soon'", 10},
        {"list where a number is expected", minimal_with({"shutdown_timeout_ms: [1]"}),
         "shutdown_timeout_ms: expected a whole number, got a list", 10},
        {"map where a number is expected", minimal_with({"startup_timeout_s: {a: 1}"}),
         "startup_timeout_s: expected a whole number, got a mapping", 10},
        {"negative startup_timeout_s", minimal_with({"startup_timeout_s: -1"}),
         "startup_timeout_s: value -1 is out of range 0..86400", 10},
        {"a number too large for int64",
         minimal_with({"shutdown_timeout_ms: 99999999999999999999"}),
         "shutdown_timeout_ms: expected a whole number, got '99999999999999999999'", 10},

        // --- amqp ----------------------------------------------------------------------------
        {"missing amqp", kAfterAmqp, "amqp: is required (amqp.urls)", 1},
        {"amqp is a list", std::string("amqp: [amqp://h/]\n") + kAfterAmqp,
         "amqp: expected a mapping, got a list", 1},
        {"missing amqp.urls", std::string("amqp:\n  heartbeat_s: 30\n") + kAfterAmqp,
         "amqp.urls: is required (one or more amqp:// URLs)", 2},
        {"unknown key in amqp",
         std::string("amqp:\n  urls: [\"amqp://h/\"]\n  vhost: prod\n") + kAfterAmqp,
         "amqp.vhost: unknown key (known keys: urls, ", 3},
        {"amqp.urls is a mapping", std::string("amqp:\n  urls: {a: b}\n") + kAfterAmqp,
         "amqp.urls: expected a list of strings, got a mapping", 2},
        {"an amqp.urls item is a list",
         std::string("amqp:\n  urls:\n    - [amqp://h/]\n") + kAfterAmqp,
         "amqp.urls[0]: expected a string, got a list", 3},
        {"http:// URL", std::string("amqp:\n  urls: [\"http://h/\"]\n") + kAfterAmqp,
         "amqp.urls[0]: 'http://h/': scheme must be amqp:// or amqps://", 2},
        {"non-numeric port",
         std::string("amqp:\n  urls:\n    - amqp://h/\n    - amqp://h:abc/\n") + kAfterAmqp,
         "amqp.urls[1]: 'amqp://h:abc/': port 'abc' is not a number", 4},
        {"port out of range", std::string("amqp:\n  urls: [\"amqp://h:99999/\"]\n") + kAfterAmqp,
         "amqp.urls[0]: 'amqp://h:99999/': port 99999 is out of range 1-65535", 2},
        {"bad percent-encoding (password masked in the message)",
         std::string("amqp:\n  urls: [\"amqp://u:p%zz@h/\"]\n") + kAfterAmqp,
         "amqp.urls[0]: 'amqp://u:***@h/': bad percent-encoding in the password", 2},
        {"unsupported URL query parameter",
         std::string("amqp:\n  urls: [\"amqp://h/?channel_max=5\"]\n") + kAfterAmqp,
         "unsupported URL parameter 'channel_max' (supported: heartbeat)", 2},
        {"heartbeat_s out of range",
         std::string("amqp:\n  urls: [\"amqp://h/\"]\n  heartbeat_s: 5000\n") + kAfterAmqp,
         "amqp.heartbeat_s: value 5000 is out of range 0..3600", 3},
        {"heartbeat_s is text",
         std::string("amqp:\n  urls: [\"amqp://h/\"]\n  heartbeat_s: fast\n") + kAfterAmqp,
         "amqp.heartbeat_s: expected a whole number, got 'fast'", 3},

        // --- postgres ------------------------------------------------------------------------
        {"missing postgres",
         lines({"amqp:", "  urls: [\"amqp://h/\"]",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres: is required (postgres.url)", 1},
        {"missing postgres.url",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres: {}",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres.url: is required", 3},
        {"postgres is a scalar",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres: postgresql://h/db",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres: expected a mapping, got a scalar", 3},
        {"unknown key in postgres",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres:", "  url: postgresql://h/db",
                "  pool_mode: 4",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres.pool_mode: unknown key (known keys: url", 5},
        {"postgres.pool_size of zero",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres:", "  url: postgresql://h/db",
                "  pool_size: 0",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres.pool_size: value 0 is out of range 1..10000", 5},
        {"empty postgres.url",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres:", "  url: \"\"",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres.url: must not be empty", 4},
        {"postgres.url is a list",
         lines({"amqp:", "  urls: [\"amqp://h/\"]", "postgres:", "  url: [a, b]",
                "pipelines:", "  - {name: p, queue: q, table: t, columns: {id: /id}}"}),
         "postgres.url: expected a string, got a list", 4},

        // --- log, retry -----------------------------------------------------------------------
        {"log is a scalar", minimal_with({"log: info"}), "log: expected a mapping, got a scalar",
         10},
        {"bad log level", minimal_with({"log: {level: loud}"}),
         "log.level: 'loud' is not one of trace, debug, info, warn, error, critical, off", 10},
        {"unknown key in log", minimal_with({"log:", "  level: info", "  file: /tmp/x"}),
         "log.file: unknown key (known keys: level", 12},
        {"retry.max_ms below initial_ms", minimal_with({"retry: {initial_ms: 500, max_ms: 100}"}),
         "retry.max_ms: must not be below retry.initial_ms", 10},
        {"unknown key in retry", minimal_with({"retry:", "  initial_ms: 100", "  jitter: 0.5"}),
         "retry.jitter: unknown key (known keys: initial_ms, ", 12},
        {"retry is a list", minimal_with({"retry: [100, 200]"}),
         "retry: expected a mapping, got a list", 10},
        {"retry.initial_ms zero", minimal_with({"retry: {initial_ms: 0}"}),
         "retry.initial_ms: value 0 is out of range 1..3600000", 10},

        // --- pipelines list -------------------------------------------------------------------
        {"missing pipelines", kHead, "pipelines: is required (a list of queue → table flows)", 1},
        {"empty pipelines list", std::string(kHead) + "pipelines: []\n",
         "pipelines: must hold at least one pipeline", 5},
        {"pipelines is a mapping", std::string(kHead) + "pipelines: {name: p}\n",
         "pipelines: expected a list, got a mapping", 5},
        {"a pipeline that is a scalar", std::string(kHead) + "pipelines:\n  - orders\n",
         "pipelines[0]: expected a mapping, got a scalar", 6},
        {"duplicate pipeline names",
         std::string(kHead) +
             lines({"pipelines:", "  - {name: p, queue: q1, table: t, columns: {id: /id}}",
                    "  - {name: x, queue: q2, table: t, columns: {id: /id}}", "  - name: p",
                    "    queue: q3", "    table: t", "    columns: {id: /id}"}),
         "pipelines[2].name: 'p' is used by another pipeline", 8},

        // --- pipeline keys --------------------------------------------------------------------
        {"missing name",
         std::string(kHead) +
             lines({"pipelines:", "  - queue: q", "    table: t", "    columns: {id: /id}"}),
         "pipelines[0].name: is required", 6},
        {"name is a list",
         std::string(kHead) +
             "pipelines:\n  - {name: [a], queue: q, table: t, columns: {id: /id}}\n",
         "pipelines[0].name: expected a string, got a list", 6},
        {"bad characters in the name",
         std::string(kHead) + lines({"pipelines:", "  - name: orders/eu", "    queue: q",
                                     "    table: t", "    columns: {id: /id}"}),
         "pipelines[0].name: 'orders/eu' may only hold letters, digits, '_', '-' and '.'", 6},
        {"a space in the name",
         std::string(kHead) + lines({"pipelines:", "  - queue: q", "    name: my orders",
                                     "    table: t", "    columns: {id: /id}"}),
         "pipelines[0].name: 'my orders' may only hold letters", 7},
        {"missing queue",
         std::string(kHead) +
             lines({"pipelines:", "  - name: p", "    table: t", "    columns: {id: /id}"}),
         "pipelines[0].queue: is required", 6},
        {"empty queue",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: ''", "    table: t",
                                     "    columns: {id: /id}"}),
         "pipelines[0].queue: must not be empty", 7},
        {"missing table",
         std::string(kHead) +
             lines({"pipelines:", "  - name: p", "    queue: q", "    columns: {id: /id}"}),
         "pipelines[0].table: is required", 6},
        {"empty columns",
         std::string(kHead) +
             lines({"pipelines:", "  - name: p", "    queue: q", "    table: t", "    columns:"}),
         "pipelines[0].columns: is empty: omit it to map columns by name, or map some", 10},
        {"debezium with insert",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    format: debezium", "    mode: insert"}),
         "pipelines[0].mode: format: debezium needs mode: upsert", 10},
        {"on_truncate without debezium", minimal_with({"    on_truncate: ignore"}),
         "pipelines[0].on_truncate: applies only to format: debezium", 10},
        {"unknown format", minimal_with({"    format: avro"}), "pipelines[0].format: ", 10},
        {"unknown key in a pipeline", minimal_with({"    queues: [a, b]"}),
         "pipelines[0].queues: unknown key (known keys: name, queue, format, on_truncate, ", 10},
        {"workers 0", minimal_with({"    workers: 0"}),
         "pipelines[0].workers: value 0 is out of range 1..64", 10},
        {"workers is text", minimal_with({"    workers: two"}),
         "pipelines[0].workers: expected a whole number, got 'two'", 10},
        {"workers is fractional", minimal_with({"    workers: 1.5"}),
         "pipelines[0].workers: expected a whole number, got '1.5'", 10},
        {"prefetch 70000", minimal_with({"    prefetch: 70000"}),
         "pipelines[0].prefetch: value 70000 is out of range 1..65535", 10},
        {"prefetch 0", minimal_with({"    prefetch: 0"}),
         "pipelines[0].prefetch: value 0 is out of range 1..65535", 10},
        {"batch is a list", minimal_with({"    batch: [1000, 50]"}),
         "pipelines[0].batch: expected a mapping, got a list", 10},
        {"unknown key in batch", minimal_with({"    batch:", "      max_rows: 5"}),
         "pipelines[0].batch.max_rows: unknown key (known keys: max_messages, ", 11},
        {"max_messages 0", minimal_with({"    batch: {max_messages: 0}"}),
         "pipelines[0].batch.max_messages: value 0 is out of range 1..65535", 10},
        {"max_delay_ms -1", minimal_with({"    batch:", "      max_delay_ms: -1"}),
         "pipelines[0].batch.max_delay_ms: value -1 is out of range 0..3600000", 11},
        {"max_bytes -5", minimal_with({"    batch:", "      max_bytes: -5"}),
         "pipelines[0].batch.max_bytes: value -5 is out of range 1..2147483648", 11},
        {"max_messages above prefetch",
         minimal_with({"    prefetch: 100", "    batch:", "      max_delay_ms: 10",
                       "      max_messages: 500"}),
         "pipelines[0].batch.max_messages: 500 exceeds prefetch 100: the broker would never send "
         "enough messages to fill a batch",
         13},
        {"table a.b.c",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q",
                                     "    table: a.b.c", "    columns: {id: /id}"}),
         "pipelines[0].table: 'a.b.c' is not a table name (table, schema.table, \"Quoted\".t)", 8},
        {"table with an empty part",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q",
                                     "    table: public.", "    columns: {id: /id}"}),
         "pipelines[0].table: 'public.' is not a table name", 8},
        {"table with an empty schema",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q",
                                     "    table: .orders", "    columns: {id: /id}"}),
         "pipelines[0].table: '.orders' is not a table name", 8},
        {"table with an unclosed quote",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q",
                                     "    table: '\"public.orders'", "    columns: {id: /id}"}),
         "pipelines[0].table: '\"public.orders' is not a table name", 8},
        {"bad mode", minimal_with({"    mode: merge"}),
         "pipelines[0].mode: 'merge' is not one of insert, ignore, upsert", 10},
        {"ignore without key", minimal_with({"    mode: ignore"}),
         "pipelines[0].key: is required by mode ignore", 6},
        {"upsert without key", minimal_with({"    mode: upsert"}),
         "pipelines[0].key: is required by mode upsert", 6},
        {"key column not mapped", minimal_with({"    mode: upsert", "    key: [id, account]"}),
         "pipelines[0].key: key column 'account' is not one of the mapped columns", 11},
        {"key is a mapping", minimal_with({"    key: {id: 1}"}),
         "pipelines[0].key: expected a list of strings, got a mapping", 10},
        {"on_error unknown", minimal_with({"    on_error: retry"}),
         "pipelines[0].on_error: 'retry' is not one of dead_letter, reject, stop", 10},
        {"dead_letter is a scalar", minimal_with({"    dead_letter: orders.dead"}),
         "pipelines[0].dead_letter: expected a mapping, got a scalar", 10},
        {"unknown key in dead_letter", minimal_with({"    dead_letter:", "      queue: x"}),
         "pipelines[0].dead_letter.queue: unknown key (known keys: exchange, ", 11},
        {"negative max_redeliveries", minimal_with({"    max_redeliveries: -1"}),
         "pipelines[0].max_redeliveries: value -1 is out of range 0..1000000", 10},

        // --- columns --------------------------------------------------------------------------
        {"columns is a list",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns: [id, amount]"}),
         "pipelines[0].columns: expected a mapping, got a list", 9},
        {"columns is empty",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns: {}"}),
         "pipelines[0].columns: must map at least one column", 9},
        {"a column source without a leading slash",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: id"}),
         "pipelines[0].columns.id: unknown source 'id' (a JSON Pointer such as /id", 10},
        {"JSON pointer with ~2",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: /a~2b"}),
         "pipelines[0].columns.id: invalid JSON Pointer '/a~2b': '~' must be followed by 0 or 1",
         10},
        {"JSON pointer ending in ~",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: /a~"}),
         "pipelines[0].columns.id: invalid JSON Pointer '/a~'", 10},
        {"unknown $source",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: /id", "      rk: $routingkey"}),
         "pipelines[0].columns.rk: unknown source '$routingkey'", 11},
        {"$header. without a name",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: /id", "      tenant: $header."}),
         "pipelines[0].columns.tenant: '$header.' needs a header name, e.g. $header.tenant", 11},
        {"a column source that is a list",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: [/id]"}),
         "pipelines[0].columns.id: expected a source such as /id or $body, got a list", 10},
        {"unknown key in a column's long form",
         std::string(kHead) +
             lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                    "    columns:", "      id:", "        from: /id", "        type: bigint"}),
         "pipelines[0].columns.id.type: unknown key (known keys: from, ", 12},
        {"long form without from",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: {default: '0'}"}),
         "pipelines[0].columns.id.from: is required", 10},
        {"long form required is not a boolean",
         std::string(kHead) +
             lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                    "    columns:", "      id:", "        from: /id", "        required: maybe"}),
         "pipelines[0].columns.id.required: expected true or false, got 'maybe'", 12},
        {"long form default is a mapping",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: {from: /id, default: {a: 1}}"}),
         "pipelines[0].columns.id.default: expected a string, got a mapping", 10},

        // --- environment ----------------------------------------------------------------------
        {"missing environment variable", minimal_with({"shutdown_timeout_ms: ${RMQ2PG_T_MISSING}"}),
         "shutdown_timeout_ms: environment variable 'RMQ2PG_T_MISSING' is not set", 10},
        {"missing environment variable in a column source",
         std::string(kHead) + lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                                     "    columns:", "      id: ${RMQ2PG_T_MISSING}"}),
         "pipelines[0].columns.id: environment variable 'RMQ2PG_T_MISSING' is not set", 10},
        {"unclosed ${", minimal_with({"    dead_letter: {routing_key: \"${RMQ2PG_T_MISSING\"}"}),
         "pipelines[0].dead_letter.routing_key: unclosed ${ in '${RMQ2PG_T_MISSING'", 10},
    };

    REQUIRE(cases.size() >= 35);

    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.name) {
            INFO("case: " << c.name << "\n--- yaml ---\n"
                          << c.yaml << "--- problems ---\n"
                          << joined(problems_of(c.yaml)));
            std::vector<std::string> problems;
            CHECK_THROWS_AS(load_config_text(c.yaml, "test.yaml"), ConfigError);
            problems = problems_of(c.yaml);
            const std::string* hit = nullptr;
            for (const auto& p : problems)
                if (hit == nullptr && p.find(c.expected) != std::string::npos)
                    hit = &p;
            REQUIRE(hit != nullptr);
            const std::string prefix = "test.yaml:" + std::to_string(c.line) + ": ";
            CHECK(hit->compare(0, prefix.size(), prefix) == 0);
        }
    }
}

TEST_CASE("an amqp URL's password never appears in an error line", "[config]") {
    auto problems =
        problems_of(std::string("amqp:\n  urls: [\"amqp://u:hunter2@h:0/\"]\n") + kAfterAmqp);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] ==
          "test.yaml:2: amqp.urls[0]: 'amqp://u:***@h:0/': port 0 is out of range 1-65535");
    CHECK(problems[0].find("hunter2") == std::string::npos);
}

TEST_CASE("an empty amqp.urls list is rejected", "[config]") {
    auto problems = problems_of(std::string("amqp:\n  urls: []\n") + kAfterAmqp);
    INFO(joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("test.yaml:2: amqp.urls: "));
}

TEST_CASE("every problem in a file is reported, not just the first", "[config]") {
    const std::string yaml = lines({
        "amqp:",                               // 1
        "  urls: [\"ftp://h/\"]",              // 2
        "  heartbeat: 5",                      // 3
        "postgres: {}",                        // 4
        "log: {level: chatty}",                // 5
        "retry: {initial_ms: 10, max_ms: 5}",  // 6
        "pipelines:",                          // 7
        "  - name: a b",                       // 8
        "    queue: q",                        // 9
        "    workers: 0",                      // 10
        "    prefetch: 70000",                 // 11
        "    table: x.y.z",                    // 12
        "    mode: merge",                     // 13
        "    columns:",                        // 14
        "      id: ~2",                        // 15
        "      b: $nope",                      // 16
        "    on_error: explode",               // 17
    });
    std::vector<std::string> problems;
    try {
        load_config_text(yaml, "test.yaml");
        FAIL("no ConfigError thrown");
    } catch (const ConfigError& e) {
        problems = e.problems();
        REQUIRE_FALSE(problems.empty());
        CHECK(std::string(e.what()) == problems.front());
    }
    INFO(joined(problems));
    const std::vector<std::string> expected_prefixes = {
        "test.yaml:2: amqp.urls[0]: 'ftp://h/': scheme must be amqp:// or amqps://",
        "test.yaml:3: amqp.heartbeat: unknown key",
        "test.yaml:4: postgres.url: is required",
        "test.yaml:5: log.level: 'chatty' is not one of",
        "test.yaml:6: retry.max_ms: must not be below retry.initial_ms",
        "test.yaml:8: pipelines[0].name: 'a b' may only hold",
        "test.yaml:10: pipelines[0].workers: value 0 is out of range 1..64",
        "test.yaml:11: pipelines[0].prefetch: value 70000 is out of range 1..65535",
        "test.yaml:12: pipelines[0].table: 'x.y.z' is not a table name",
        "test.yaml:13: pipelines[0].mode: 'merge' is not one of",
        "test.yaml:15: pipelines[0].columns.id: unknown source '~2'",
        "test.yaml:16: pipelines[0].columns.b: unknown source '$nope'",
        "test.yaml:17: pipelines[0].on_error: 'explode' is not one of",
    };
    CHECK(problems.size() == expected_prefixes.size());
    for (const auto& prefix : expected_prefixes) {
        INFO("expected a problem starting with: " << prefix);
        bool found = false;
        for (const auto& p : problems)
            found = found || p.rfind(prefix, 0) == 0;
        CHECK(found);
    }
}

TEST_CASE("a problem in the second pipeline names that pipeline", "[config]") {
    const std::string yaml =
        std::string(kHead) + lines({
                                 "pipelines:",                                             // 5
                                 "  - {name: a, queue: q, table: t, columns: {id: /id}}",  // 6
                                 "  - name: b",                                            // 7
                                 "    queue: q",                                           // 8
                                 "    table: t",                                           // 9
                                 "    columns: {id: /id}",                                 // 10
                                 "    workers: 65",                                        // 11
                             });
    auto problems = problems_of(yaml);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "test.yaml:11: pipelines[1].workers: value 65 is out of range 1..64");
}

TEST_CASE("a missing config file is reported with its path", "[config]") {
    try {
        rmq2pg::load_config_file("/nonexistent/rmq2pg-test.yaml");
        FAIL("no ConfigError thrown");
    } catch (const ConfigError& e) {
        REQUIRE(e.problems().size() == 1);
        CHECK_THAT(e.problems()[0],
                   Catch::StartsWith("/nonexistent/rmq2pg-test.yaml: cannot be read: "));
    }
}

#ifdef RMQ2PG_SOURCE_DIR
TEST_CASE("the shipped example config loads", "[config]") {
    ::unsetenv("RMQ2PG_AMQP_URL");
    ::unsetenv("RMQ2PG_PG_URL");
    Config c = rmq2pg::load_config_file(RMQ2PG_SOURCE_DIR "/config/rmq2pg.example.yaml");
    REQUIRE(c.amqp_urls.size() == 1);
    CHECK(c.amqp_urls[0].host == "127.0.0.1");
    CHECK(c.postgres_url == "postgresql://rmq2pg@127.0.0.1:5432/app");
    REQUIRE_FALSE(c.pipelines.empty());
    CHECK(c.pipelines[0].name == "orders");
}
#endif

TEST_CASE("modes and on_error values print as they are written", "[config]") {
    CHECK(std::string(rmq2pg::to_string(rmq2pg::WriteMode::insert)) == "insert");
    CHECK(std::string(rmq2pg::to_string(rmq2pg::WriteMode::ignore)) == "ignore");
    CHECK(std::string(rmq2pg::to_string(rmq2pg::WriteMode::upsert)) == "upsert");
    CHECK(std::string(rmq2pg::to_string(rmq2pg::OnError::dead_letter)) == "dead_letter");
    CHECK(std::string(rmq2pg::to_string(rmq2pg::OnError::reject)) == "reject");
    CHECK(std::string(rmq2pg::to_string(rmq2pg::OnError::stop)) == "stop");
}

TEST_CASE("an empty file is rejected", "[config]") {
    auto problems = problems_of("");
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("test.yaml") &&
                                Catch::Contains("(top level): expected a mapping with amqp, "
                                                "postgres and pipelines, got nothing (null)"));
}

// The max_messages/prefetch rule must not depend on whether max_messages was written out:
// the default 1000 exceeds a prefetch of 500 just the same.
TEST_CASE("a default max_messages above prefetch is caught too", "[config]") {
    SECTION("with no batch section") {
        auto problems = problems_of(minimal_with({"    prefetch: 500"}));
        INFO(joined(problems));
        REQUIRE(problems.size() == 1);
        CHECK_THAT(problems[0], Catch::StartsWith("test.yaml:") &&
                                    Catch::Contains("max_messages: 1000 exceeds prefetch 500"));
    }
    SECTION("with a batch section that leaves max_messages out, the line is still named") {
        auto problems =
            problems_of(minimal_with({"    prefetch: 500", "    batch: {max_delay_ms: 5}"}));
        INFO(joined(problems));
        REQUIRE(problems.size() == 1);
        CHECK_THAT(problems[0], Catch::StartsWith("test.yaml:1") &&
                                    Catch::Contains("pipelines[0].batch.max_messages: 1000 "
                                                    "exceeds prefetch 500"));
    }
}

// YAML maps may repeat a key; yaml-cpp keeps both. Two mappings for one column would make an
// invalid COPY column list at run time, so the loader must say so.
TEST_CASE("a column mapped twice is rejected", "[config]") {
    const std::string yaml = std::string(kHead) + lines({
                                                      "pipelines:",     // 5
                                                      "  - name: p",    // 6
                                                      "    queue: q",   // 7
                                                      "    table: t",   // 8
                                                      "    columns:",   // 9
                                                      "      id: /id",  // 10
                                                      "      id: /x",   // 11
                                                  });
    auto problems = problems_of(yaml);
    INFO(joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("test.yaml:11: pipelines[0].columns.id: "));
}

TEST_CASE("a debezium pipeline upserts by its position, columns by name and the primary key",
          "[config]") {
    Config c = load_config_text(std::string(kHead) +
                                    "pipelines:\n"
                                    "  - name: customers\n"
                                    "    queue: dbserver1.inventory.customers\n"
                                    "    format: debezium\n"
                                    "    table: inventory.customers\n"
                                    "    mode: upsert\n"
                                    "    schema_evolution: none\n"
                                    "    on_truncate: ignore\n",
                                "cdc.yaml");
    const auto& p = c.pipelines.at(0);
    CHECK(p.format == rmq2pg::MessageFormat::debezium);
    CHECK(p.columns.empty());
    CHECK(p.key.empty());
    CHECK(p.version == "_rmq2pg_version");
    REQUIRE(p.delete_when);
    CHECK(p.delete_when->equals == "d");
}

TEST_CASE("postgres.pool_size defaults to 16 and pools only workers that outnumber it") {
    auto text = [](const std::string& pool, int workers) {
        return "amqp:\n  urls: [\"amqp://h/\"]\npostgres:\n  url: postgresql://h/db\n" + pool +
               "pipelines:\n  - {name: p, queue: q, table: t, workers: " + std::to_string(workers) +
               ", columns: {id: /id}}\n";
    };
    Config defaults = load_config_text(text("", 16), "test.yaml");
    CHECK(defaults.postgres_pool_size == 16);
    CHECK_FALSE(uses_pg_pool(defaults));
    Config small = load_config_text(text("  pool_size: 4\n", 5), "test.yaml");
    CHECK(small.postgres_pool_size == 4);
    CHECK(uses_pg_pool(small));
}
