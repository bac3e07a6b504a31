// The operators' tools without a server: dead-letter reasons folded into groups, --reason
// matching, the status page's recent reasons, suggest's name folding, and both tools' arguments
// (the broker side is integration.dead_letter_tools and integration.suggest).
#include <catch2/catch.hpp>

#include <algorithm>

#include "cli.h"
#include "dead_letter_reasons.h"
#include "dead_letter_tools.h"
#include "recent_reasons.h"
#include "suggest.h"

using namespace rmq2pg;

TEST_CASE("one cause is one group whatever the value and the line", "[dead_letters]") {
    std::string a =
        "pipeline 'p' (batch of 1): ERROR:  invalid input syntax for type numeric: \"abc\" "
        "CONTEXT:  COPY t_orders, line 3, column amount: \"abc\" (SQLSTATE 22P02)";
    std::string b =
        "pipeline 'p' (batch of 1): ERROR:  invalid input syntax for type numeric: \"1x2\" "
        "CONTEXT:  COPY t_orders, line 17, column amount: \"1x2\" (SQLSTATE 22P02)";
    CHECK(reason_group(a) == reason_group(b));
    CHECK(reason_group(a).find("SQLSTATE 22P02") != std::string::npos);
    CHECK(reason_group(a).find("line N") != std::string::npos);
    CHECK(reason_group(a).find("abc") == std::string::npos);
}

TEST_CASE("numbers inside words tell groups apart", "[dead_letters]") {
    CHECK(reason_group("table t_7 (SQLSTATE 23502)") == "table t_7 (SQLSTATE 23502)");
    CHECK(reason_group("value too long for type character varying(64)") ==
          "value too long for type character varying(N)");
    CHECK(reason_group("x (SQLSTATE 22001)") != reason_group("x (SQLSTATE 22P02)"));
}

TEST_CASE("a NOT NULL violation's failing row is values, folded away", "[dead_letters]") {
    std::string reason =
        "ERROR:  null value in column \"account\" violates not-null constraint DETAIL:  Failing "
        "row contains (963, null, {\"id\": 963, \"secret\": \"s (x)\"}, msg-963). CONTEXT:  COPY "
        "t, line 1: \"963\t\\N\t{\"id\": 963, \"secret\": \"s\"}\" (SQLSTATE 23502)";
    std::string group = reason_group(reason);
    CHECK(group.find("secret") == std::string::npos);
    CHECK(group.find("Failing row contains (…). CONTEXT:") != std::string::npos);
    CHECK(group.find("line N: \"…\" (SQLSTATE") != std::string::npos);
    CHECK(group.find("(SQLSTATE 23502)") != std::string::npos);
}

TEST_CASE("a shortened reason's byte count does not split its group", "[dead_letters]") {
    CHECK(reason_group("too long: \"aaaa\" (4100 bytes in all)") ==
          reason_group("too long: \"bbbbbb\" (5100 bytes in all)"));
}

TEST_CASE("--reason matches the text or its group, case-insensitively", "[dead_letters]") {
    std::string reason = "invalid input syntax for type numeric: \"abc\" (SQLSTATE 22P02)";
    CHECK(reason_matches("", reason));
    CHECK(reason_matches("NUMERIC", reason));
    CHECK(reason_matches("22p02", reason));
    CHECK(reason_matches("numeric: \"…\"", reason));
    CHECK_FALSE(reason_matches("23502", reason));
    CHECK_FALSE(reason_matches("numeric", ""));
}

TEST_CASE("dead-letters arguments: subcommand, filters and their errors", "[dead_letters]") {
    CommandLine cli =
        parse_command_line({"dead-letters", "replay", "--config", "a.yaml", "--pipeline", "orders",
                            "--reason", "22P02", "--limit", "10", "--dry-run"});
    REQUIRE(cli.mode == CommandLine::Mode::dead_letters);
    CHECK(cli.config_path == "a.yaml");
    DeadLetterOptions options;
    REQUIRE_FALSE(parse_dead_letter_options(cli.tool_args, options));
    CHECK(options.action == DeadLetterOptions::Action::replay);
    CHECK(options.pipeline == "orders");
    CHECK(options.reason == "22P02");
    CHECK(options.limit == std::size_t{10});
    CHECK(options.dry_run);

    DeadLetterOptions show;
    REQUIRE_FALSE(parse_dead_letter_options({"show"}, show));
    CHECK(show.limit == std::size_t{10});  // a screenful by default

    DeadLetterOptions bad;
    CHECK(parse_dead_letter_options({}, bad));
    CHECK(parse_dead_letter_options({"move"}, bad));
    CHECK(parse_dead_letter_options({"list", "--limit", "0"}, bad));
    CHECK(parse_dead_letter_options({"list", "--limit", "x"}, bad));
    CHECK(parse_dead_letter_options({"list", "--dry-run"}, bad));      // replay's only
    CHECK(parse_dead_letter_options({"purge", "--queue", "q"}, bad));  // whose dead letters?
    CHECK(parse_command_line({"dead-letters", "list"}).mode == CommandLine::Mode::usage_error);
    CHECK(parse_command_line({"dead-letters", "list", "--config", "a", "--migrate"}).mode ==
          CommandLine::Mode::usage_error);
}

TEST_CASE("the status page's reasons: groups of the last hour, most frequent first",
          "[dead_letters]") {
    using namespace std::chrono;
    RecentReasons reasons;
    auto t0 = system_clock::time_point(hours(500000));
    for (int i = 0; i < 3; ++i)
        reasons.add("bad numeric: \"x" + std::to_string(i) + "\" (SQLSTATE 22P02)", t0);
    reasons.add("not JSON: line 1", t0 + minutes(5));
    auto top = reasons.top(5, t0 + minutes(10));
    REQUIRE(top.size() == 2);
    CHECK(top[0].reason == "bad numeric: \"…\" (SQLSTATE 22P02)");
    CHECK(top[0].count == 3);
    CHECK(top[1].count == 1);
    SECTION("an hour later the old minute is gone") {
        top = reasons.top(5, t0 + minutes(62));
        REQUIRE(top.size() == 1);
        CHECK(top[0].reason == "not JSON: line N");
    }
    SECTION("ever-new reasons are capped per minute") {
        for (int i = 0; i < 100; ++i)
            reasons.add("reason r" + std::to_string(i), t0 + minutes(20));
        auto all = reasons.top(1000, t0 + minutes(20));
        CHECK(all.size() <= 2 + RecentReasons::kMaxGroupsPerMinute + 1);  // + "(other reasons)"
        CHECK(std::any_of(all.begin(), all.end(),
                          [](const auto& e) { return e.reason == "(other reasons)"; }));
    }
}

TEST_CASE("suggest folds case, '_' and '-' so order_id meets orderId", "[suggest]") {
    CHECK(fold_name("order_id") == fold_name("orderId"));
    CHECK(fold_name("OrderID") == "orderid");
    CHECK(fold_name("x-tenant") == fold_name("xTenant"));
    CHECK(fold_name("order_id") != fold_name("order_ids"));
}

TEST_CASE("suggest arguments: a pipeline with --config, the URLs without", "[suggest]") {
    CommandLine cli = parse_command_line({"suggest", "--config", "a.yaml", "--pipeline", "p"});
    REQUIRE(cli.mode == CommandLine::Mode::suggest);
    SuggestOptions options;
    CHECK_FALSE(parse_suggest_options(cli.tool_args, true, options));
    CHECK(options.pipeline == "p");
    CHECK(options.samples == 20);

    CommandLine bare =
        parse_command_line({"suggest", "--amqp-url", "amqp://h/", "--postgres-url",
                            "postgresql://h/db", "--queue", "q", "--table", "t", "--samples", "5"});
    REQUIRE(bare.mode == CommandLine::Mode::suggest);  // no --config needed
    SuggestOptions urls;
    CHECK_FALSE(parse_suggest_options(bare.tool_args, false, urls));
    CHECK(urls.samples == 5);

    SuggestOptions bad;
    CHECK(parse_suggest_options({}, true, bad));                 // which pipeline?
    CHECK(parse_suggest_options({"--queue", "q"}, false, bad));  // no servers, no table
    CHECK(parse_suggest_options({"--pipeline", "p", "--samples", "0"}, true, bad));
    CHECK(parse_suggest_options({"--pipeline", "p", "--table", "t"}, true, bad));
}
