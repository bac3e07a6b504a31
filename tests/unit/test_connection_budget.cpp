// The connection budget: what a config needs, what a server can give without locking its other
// clients out, and how a failed connection is told apart (refused role vs no server).
#include <catch2/catch.hpp>

#include <string>

#include "config.h"
#include "connection_budget.h"
#include "pg_budget.h"

using namespace rmq2pg;

namespace {

// The incident of issue 13: max_connections 100, 3 reserved, some clients already there.
ServerConnections server(int max_connections, int reserved, int in_use) {
    ServerConnections s;
    s.server = "db:5432";
    s.max_connections = max_connections;
    s.reserved = reserved;
    s.in_use = in_use;
    s.role = "rmq2pg";
    s.database = "orders";
    return s;
}

Config with_pipelines(std::initializer_list<int> workers) {
    Config c;
    for (int w : workers) {
        PipelineConfig p;
        p.workers = w;
        c.pipelines.push_back(p);
    }
    return c;
}

}  // namespace

TEST_CASE("a config needs one PostgreSQL connection per worker while they fit the pool") {
    CHECK(connections_needed(with_pipelines({1})) == 1);
    CHECK(connections_needed(with_pipelines({4, 1, 11})) == 16);
    CHECK_FALSE(uses_pg_pool(with_pipelines({4, 1, 11})));
    CHECK(connections_needed_why(with_pipelines({1})) == "one per worker");
}

TEST_CASE("workers that outnumber postgres.pool_size need the pool's size, not one each") {
    CHECK(connections_needed(with_pipelines({4, 1, 16})) == 16);
    Config many;
    for (int i = 0; i < 200; ++i)
        many.pipelines.emplace_back();
    CHECK(uses_pg_pool(many));
    CHECK(connections_needed(many) == 16);
    CHECK(connections_needed_why(many) == "postgres.pool_size");
    many.postgres_pool_size = 200;
    CHECK_FALSE(uses_pg_pool(many));
    CHECK(connections_needed(many) == 200);
}

TEST_CASE("pipelines of streams add the status poller's one connection") {
    Config c = with_pipelines({2, 1});
    c.pipelines[1].streams = {"s1"};
    CHECK(connections_needed(c) == 4);
    CHECK(connections_needed_why(c) == "one per worker, plus 1 for the streams' status poller");
    c.postgres_pool_size = 2;
    CHECK(connections_needed(c) == 3);
}

TEST_CASE("a pooled config over the budget is told to lower postgres.pool_size") {
    auto v = judge_connection_budget(100, server(100, 3, 12), "postgres.pool_size");
    CHECK_FALSE(v.ok);
    CHECK(v.message.find("config needs 100 PostgreSQL connections (postgres.pool_size)") == 0);
    CHECK(v.message.find("lower postgres.pool_size, or raise") != std::string::npos);
}

TEST_CASE("a tenth of the usable slots, at least 3, stay free for other clients") {
    CHECK(slots_kept_free(0) == 3);
    CHECK(slots_kept_free(20) == 3);
    CHECK(slots_kept_free(31) == 4);  // rounded up: never fewer than a tenth
    CHECK(slots_kept_free(97) == 10);
    CHECK(slots_kept_free(1000) == 100);
}

TEST_CASE("200 pipelines against max_connections 100 are refused with the numbers") {
    auto v = judge_connection_budget(200, server(100, 3, 12));
    CHECK_FALSE(v.ok);
    CHECK(v.allowed == 75);  // 97 usable − 12 in use − 10 kept free
    CHECK(v.message ==
          "config needs 200 PostgreSQL connections (one per worker); server db:5432 "
          "max_connections 100 (3 reserved for superusers), 12 in use, role rmq2pg limit none: at "
          "most 75 can be taken without locking other clients out (10 stay free for them): lower "
          "pipelines' workers, or raise the server's max_connections or the role's CONNECTION "
          "LIMIT");
}

TEST_CASE("a config that fits is accepted, up to the last slot before the kept-free ones") {
    auto s = server(100, 3, 12);
    CHECK(judge_connection_budget(75, s).ok);
    CHECK_FALSE(judge_connection_budget(76, s).ok);
    auto v = judge_connection_budget(10, s);
    CHECK(v.ok);
    CHECK(v.message ==
          "config needs 10 PostgreSQL connections (one per worker); server db:5432 "
          "max_connections 100 (3 reserved for superusers), 12 in use, role rmq2pg limit none: 75 "
          "can be taken, 10 stay free for other clients");
}

TEST_CASE("the role's connection limit binds when it is tighter than the server") {
    auto s = server(100, 3, 12);
    s.role_limit = 20;
    s.role_in_use = 8;
    auto v = judge_connection_budget(13, s);
    CHECK_FALSE(v.ok);
    CHECK(v.allowed == 12);
    CHECK(v.message.find("role rmq2pg limit 20 (8 in use): at most 12 can be taken") !=
          std::string::npos);
    CHECK(judge_connection_budget(12, s).ok);
}

TEST_CASE("the database's connection limit binds too, and is named") {
    auto s = server(100, 3, 0);
    s.database_limit = 5;
    s.database_in_use = 1;
    auto v = judge_connection_budget(5, s);
    CHECK_FALSE(v.ok);
    CHECK(v.allowed == 4);
    CHECK(v.message.find("database orders limit 5 (1 in use)") != std::string::npos);
}

TEST_CASE("a full server allows nothing, never a negative number") {
    auto v = judge_connection_budget(1, server(100, 3, 97));
    CHECK_FALSE(v.ok);
    CHECK(v.allowed == 0);
}

TEST_CASE("connections of rmq2pg instances among those in use are pointed out") {
    auto s = server(200, 3, 50);
    s.rmq2pg_in_use = 40;
    CHECK(judge_connection_budget(200, s).message.find("50 in use (40 of them rmq2pg's)") !=
          std::string::npos);
}

TEST_CASE("a server turning the role away is told apart from no server at all") {
    using Outcome = BudgetProbe::Outcome;
    CHECK(classify_connect_failure(
              "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password "
              "authentication failed for user \"rmq2pg\"") == Outcome::refused);
    CHECK(classify_connect_failure("connection to server on socket \"/run/x/.s.PGSQL.5432\" "
                                   "failed: FATAL:  Peer authentication failed for user \"a\"") ==
          Outcome::refused);
    CHECK(classify_connect_failure("FATAL:  no pg_hba.conf entry for host \"10.0.0.1\", user "
                                   "\"rmq2pg\", database \"x\", no encryption") ==
          Outcome::refused);
    CHECK(classify_connect_failure("FATAL:  role \"nobody\" does not exist") == Outcome::refused);
    CHECK(classify_connect_failure("FATAL:  database \"nope\" does not exist") == Outcome::refused);
    CHECK(classify_connect_failure("fe_sendauth: no password supplied") == Outcome::refused);
    CHECK(classify_connect_failure("FATAL:  role \"r\" is not permitted to log in") ==
          Outcome::refused);
    SECTION("no server, or one that is only busy, is unreachable: retrying may help") {
        CHECK(classify_connect_failure("connection to server at \"127.0.0.1\", port 1 failed: "
                                       "Connection refused") == Outcome::unreachable);
        CHECK(classify_connect_failure("timeout expired") == Outcome::unreachable);
        CHECK(classify_connect_failure("could not translate host name \"db\" to address") ==
              Outcome::unreachable);
        CHECK(classify_connect_failure("FATAL:  sorry, too many clients already") ==
              Outcome::unreachable);
        CHECK(classify_connect_failure("FATAL:  remaining connection slots are reserved for "
                                       "non-replication superuser connections") ==
              Outcome::unreachable);
        CHECK(classify_connect_failure("FATAL:  the database system is starting up") ==
              Outcome::unreachable);
    }
}

TEST_CASE(
    "a server without a free slot for the role, the database or anyone is full, not unreachable") {
    CHECK(connect_failure_is_full(
        "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  too many connections for "
        "role \"rmq2pg\""));
    CHECK(connect_failure_is_full("FATAL:  too many connections for database \"app\""));
    CHECK(connect_failure_is_full("FATAL:  sorry, too many clients already"));
    CHECK(
        connect_failure_is_full("FATAL:  remaining connection slots are reserved for "
                                "non-replication superuser connections"));
    CHECK_FALSE(connect_failure_is_full("connection refused"));
    CHECK_FALSE(connect_failure_is_full("FATAL:  password authentication failed for user \"x\""));
}
