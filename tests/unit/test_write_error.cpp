// What a database failure means for the worker (classify_sqlstate), and the connection string
// every PostgreSQL connection is opened with (deadlines and keepalives added, the URL's own kept).
#include <catch2/catch.hpp>

#include <string>

#include "pg_writer.h"

using rmq2pg::classify_sqlstate;
using rmq2pg::connection_string;
using rmq2pg::PgConnectionSettings;
using Kind = rmq2pg::WriteError::Kind;

TEST_CASE("a permission or schema problem stops the writes until fixed, never blames a row",
          "[write_error]") {
    CHECK(classify_sqlstate("42501") == Kind::schema);  // permission denied
    CHECK(classify_sqlstate("42P01") == Kind::schema);  // undefined table
    CHECK(classify_sqlstate("42703") == Kind::schema);  // undefined column
    CHECK(classify_sqlstate("28P01") == Kind::schema);  // password authentication failed
    CHECK(classify_sqlstate("3D000") == Kind::schema);  // database does not exist
}

TEST_CASE("a cancelled statement (statement_timeout) is retried, never bad data", "[write_error]") {
    CHECK(classify_sqlstate("57014") == Kind::transient);
}

TEST_CASE("a server shutting down or a broken connection reconnects", "[write_error]") {
    CHECK(classify_sqlstate("57P01") == Kind::connection);  // admin_shutdown
    CHECK(classify_sqlstate("57P03") == Kind::connection);  // cannot_connect_now
    CHECK(classify_sqlstate("08006") == Kind::connection);
    CHECK(classify_sqlstate("08P01") == Kind::connection);  // e.g. PgBouncer's query_wait_timeout
}

TEST_CASE("serialization failures, deadlocks and resource shortages retry the batch",
          "[write_error]") {
    CHECK(classify_sqlstate("40001") == Kind::transient);
    CHECK(classify_sqlstate("40P01") == Kind::transient);
    CHECK(classify_sqlstate("53100") == Kind::transient);  // disk full
    CHECK(classify_sqlstate("55P03") == Kind::transient);  // lock not available
    CHECK(classify_sqlstate("XX000") == Kind::transient);
}

TEST_CASE("a value or constraint the row breaks is bad data", "[write_error]") {
    CHECK(classify_sqlstate("22P02") == Kind::bad_data);  // invalid text representation
    CHECK(classify_sqlstate("23502") == Kind::bad_data);  // not null violation
    CHECK(classify_sqlstate("23505") == Kind::bad_data);
    CHECK(classify_sqlstate("54000") == Kind::bad_data);
}

namespace {

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

PgConnectionSettings settings_of(const std::string& url) {
    PgConnectionSettings s;
    s.url = url;
    s.connect_timeout_s = 7;
    s.application_name = "rmq2pg/orders/1";
    return s;
}

}  // namespace

TEST_CASE("the connection string adds deadlines and keepalives to a URL", "[write_error]") {
    std::string c = connection_string(settings_of("postgresql://u:p%40ss@db.example:6432/app"));
    CHECK(has(c, "host='db.example'"));
    CHECK(has(c, "port='6432'"));
    CHECK(has(c, "user='u'"));
    CHECK(has(c, "password='p@ss'"));
    CHECK(has(c, "dbname='app'"));
    CHECK(has(c, "connect_timeout='7'"));
    CHECK(has(c, "keepalives='1'"));
    CHECK(has(c, "keepalives_idle='5'"));
    CHECK(has(c, "keepalives_interval='2'"));
    CHECK(has(c, "keepalives_count='3'"));
    CHECK(has(c, "tcp_user_timeout='10000'"));
    CHECK(has(c, "application_name='rmq2pg/orders/1'"));
}

TEST_CASE("settings the URL gives are kept, application_name is the worker's", "[write_error]") {
    std::string c = connection_string(settings_of(
        "postgresql://db/app?connect_timeout=30&keepalives_idle=60&application_name=mine"));
    CHECK(has(c, "connect_timeout='30'"));
    CHECK_FALSE(has(c, "connect_timeout='7'"));
    CHECK(has(c, "keepalives_idle='60'"));
    CHECK_FALSE(has(c, "keepalives_idle='5'"));
    CHECK(has(c, "keepalives_count='3'"));
    CHECK_FALSE(has(c, "mine"));
    CHECK(has(c, "application_name='rmq2pg/orders/1'"));
}

TEST_CASE("a key=value URL works too and odd values are quoted", "[write_error]") {
    std::string c = connection_string(settings_of("host=/run/pg dbname=app password='a b\\'c'"));
    CHECK(has(c, "host='/run/pg'"));
    CHECK(has(c, "password='a b\\'c'"));
    CHECK(has(c, "keepalives='1'"));
}

TEST_CASE("a URL libpq cannot parse is a schema error naming postgres.url", "[write_error]") {
    try {
        connection_string(settings_of("postgresql://db/app?no_such_option=1"));
        FAIL("no error");
    } catch (const rmq2pg::WriteError& e) {
        CHECK(e.kind() == Kind::schema);
        CHECK(has(e.what(), "postgres.url"));
        CHECK(has(e.what(), "no_such_option"));
    }
}
