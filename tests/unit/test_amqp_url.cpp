// AMQP URL parsing (Go/Python client rules) and password masking for logs.
#include <catch2/catch.hpp>

#include <string>

#include "amqp_url.h"

using rmq2pg::AmqpUrl;
using rmq2pg::mask_url_password;
using rmq2pg::parse_amqp_url;

namespace {

AmqpUrl parse_ok(const std::string& text) {
    std::string error;
    auto url = parse_amqp_url(text, error);
    INFO("url: " << text << " error: " << error);
    REQUIRE(url.has_value());
    CHECK(error.empty());
    return *url;
}

std::string parse_error(const std::string& text) {
    std::string error;
    auto url = parse_amqp_url(text, error);
    INFO("url: " << text);
    CHECK_FALSE(url.has_value());
    CHECK_FALSE(error.empty());
    return error;
}

}  // namespace

TEST_CASE("a full amqp URL is split into its parts", "[amqp_url]") {
    AmqpUrl u = parse_ok("amqp://guest:guest@localhost:5672/");
    CHECK_FALSE(u.tls);
    CHECK(u.host == "localhost");
    CHECK(u.port == 5672);
    CHECK(u.user == "guest");
    CHECK(u.password == "guest");
    CHECK(u.vhost == "/");
    CHECK(u.heartbeat_s == -1);
    CHECK(u.original == "amqp://guest:guest@localhost:5672/");
}

TEST_CASE("the vhost follows the Go and Python clients", "[amqp_url]") {
    SECTION("no path is the default vhost") {
        CHECK(parse_ok("amqp://h").vhost == "/");
    }
    SECTION("a lone slash is the default vhost") {
        CHECK(parse_ok("amqp://h/").vhost == "/");
    }
    SECTION("%2f decodes to /") {
        CHECK(parse_ok("amqp://h/%2f").vhost == "/");
        CHECK(parse_ok("amqp://h/%2F").vhost == "/");
    }
    SECTION("a named vhost") {
        CHECK(parse_ok("amqp://h/prod").vhost == "prod");
    }
    SECTION("a percent-encoded slash inside a name") {
        CHECK(parse_ok("amqp://h/team%2fprod").vhost == "team/prod");
    }
    SECTION("two path segments are an error") {
        CHECK_THAT(parse_error("amqp://h/a/b"), Catch::Contains("one path segment"));
    }
    SECTION("bad percent-encoding in the vhost") {
        CHECK(parse_error("amqp://h/%zz") == "bad percent-encoding in the vhost");
        CHECK(parse_error("amqp://h/a%2") == "bad percent-encoding in the vhost");
    }
}

TEST_CASE("defaults fill what the URL leaves out", "[amqp_url]") {
    AmqpUrl u = parse_ok("amqp://h");
    CHECK(u.host == "h");
    CHECK(u.port == 5672);
    CHECK(u.user == "guest");
    CHECK(u.password == "guest");

    SECTION("amqps defaults to port 5671 and TLS") {
        AmqpUrl s = parse_ok("amqps://secure.example.com/");
        CHECK(s.tls);
        CHECK(s.port == 5671);
        CHECK(s.host == "secure.example.com");
    }
    SECTION("amqps with an explicit port") {
        AmqpUrl s = parse_ok("amqps://h:15671");
        CHECK(s.tls);
        CHECK(s.port == 15671);
    }
    SECTION("an empty host is localhost") {
        CHECK(parse_ok("amqp://").host == "localhost");
        CHECK(parse_ok("amqp:///").host == "localhost");
        CHECK(parse_ok("amqp://u:p@:5673/").host == "localhost");
    }
    SECTION("a user without a password keeps the default password") {
        AmqpUrl v = parse_ok("amqp://bob@h/");
        CHECK(v.user == "bob");
        CHECK(v.password == "guest");
    }
    SECTION("an empty password after ':' is empty") {
        AmqpUrl v = parse_ok("amqp://bob:@h/");
        CHECK(v.user == "bob");
        CHECK(v.password.empty());
    }
}

TEST_CASE("user and password are percent-decoded", "[amqp_url]") {
    AmqpUrl u = parse_ok("amqp://us%40er:p%3Ass%2Fw%25rd@h/");
    CHECK(u.user == "us@er");
    CHECK(u.password == "p:ss/w%rd");

    SECTION("a raw '@' or ':' in the password is kept (the last '@' ends the user info)") {
        AmqpUrl v = parse_ok("amqp://u:p@ss:w@h:1234/v");
        CHECK(v.user == "u");
        CHECK(v.password == "p@ss:w");
        CHECK(v.host == "h");
        CHECK(v.port == 1234);
        CHECK(v.vhost == "v");
    }
}

TEST_CASE("IPv6 hosts are written in brackets", "[amqp_url]") {
    AmqpUrl u = parse_ok("amqp://[::1]:5673/");
    CHECK(u.host == "::1");
    CHECK(u.port == 5673);
    CHECK(u.vhost == "/");

    SECTION("without a port") {
        AmqpUrl v = parse_ok("amqp://u:p@[fe80::1]/vh");
        CHECK(v.host == "fe80::1");
        CHECK(v.port == 5672);
        CHECK(v.user == "u");
        CHECK(v.vhost == "vh");
    }
    SECTION("an unclosed bracket") {
        CHECK_THAT(parse_error("amqp://[::1:5672/"), Catch::Contains("unclosed '['"));
    }
    SECTION("garbage after the bracket") {
        CHECK(parse_error("amqp://[::1]x/") == "port must be a number");
        CHECK(parse_error("amqp://[::1]:abc/") == "port must be a number");
    }
}

TEST_CASE("the heartbeat query parameter is read", "[amqp_url]") {
    CHECK(parse_ok("amqp://h/?heartbeat=10").heartbeat_s == 10);
    CHECK(parse_ok("amqp://h?heartbeat=0").heartbeat_s == 0);
    CHECK(parse_ok("amqp://h/vh?heartbeat=7").vhost == "vh");
    CHECK(parse_ok("amqp://h/?&heartbeat=3&").heartbeat_s == 3);

    SECTION("a bad heartbeat value") {
        CHECK(parse_error("amqp://h/?heartbeat=abc") ==
              "heartbeat must be a whole number of seconds");
        CHECK(parse_error("amqp://h/?heartbeat=-1") ==
              "heartbeat must be a whole number of seconds");
        CHECK(parse_error("amqp://h/?heartbeat=") == "heartbeat must be a whole number of seconds");
    }
    SECTION("any other parameter") {
        CHECK(parse_error("amqp://h/?channel_max=5") ==
              "unsupported URL parameter 'channel_max' (supported: heartbeat)");
        CHECK(parse_error("amqp://h/?heartbeat=5&frame_max=1") ==
              "unsupported URL parameter 'frame_max' (supported: heartbeat)");
    }
}

TEST_CASE("malformed URLs are rejected with a reason", "[amqp_url]") {
    CHECK(parse_error("http://h/") == "scheme must be amqp:// or amqps://");
    CHECK(parse_error("AMQP-ish") == "scheme must be amqp:// or amqps://");
    CHECK(parse_error("") == "scheme must be amqp:// or amqps://");
    CHECK(parse_error("amqp:/h") == "scheme must be amqp:// or amqps://");
    CHECK(parse_error("amqp://h:abc/") == "port 'abc' is not a number");
    CHECK(parse_error("amqp://h:/") == "port '' is not a number");
    CHECK(parse_error("amqp://h:12x/") == "port '12x' is not a number");
    CHECK(parse_error("amqp://h:99999/") == "port 99999 is out of range 1-65535");
    CHECK(parse_error("amqp://h:0/") == "port 0 is out of range 1-65535");
    CHECK(parse_error("amqp://h:-1/") == "port -1 is out of range 1-65535");
    CHECK(parse_error("amqp://h:65536") == "port 65536 is out of range 1-65535");
    CHECK(parse_ok("amqp://h:65535").port == 65535);
    CHECK(parse_ok("amqp://h:1").port == 1);
    CHECK(parse_error("amqp://u%zz:p@h/") == "bad percent-encoding in the user name");
    CHECK(parse_error("amqp://u:p%zz@h/") == "bad percent-encoding in the password");
    CHECK(parse_error("amqp://u:p%2@h/") == "bad percent-encoding in the password");
    CHECK(parse_error("amqp://u:p%@h/") == "bad percent-encoding in the password");
}

TEST_CASE("masked() hides the password of the URL as written", "[amqp_url]") {
    std::string error;
    auto u = parse_amqp_url("amqp://admin:s3cret@rabbit:5672/prod", error);
    REQUIRE(u);
    CHECK(u->masked() == "amqp://admin:***@rabbit:5672/prod");
}

TEST_CASE("mask_url_password replaces passwords and nothing else", "[amqp_url]") {
    SECTION("amqp URL") {
        CHECK(mask_url_password("amqp://guest:guest@localhost:5672/") ==
              "amqp://guest:***@localhost:5672/");
    }
    SECTION("amqps URL with a query") {
        CHECK(mask_url_password("amqps://u:pw@h/vh?heartbeat=5") ==
              "amqps://u:***@h/vh?heartbeat=5");
    }
    SECTION("postgresql URL") {
        CHECK(
            mask_url_password("postgresql://rmq2pg:pa55@db.example.com:5432/app?sslmode=require") ==
            "postgresql://rmq2pg:***@db.example.com:5432/app?sslmode=require");
    }
    SECTION("a URL without a path") {
        CHECK(mask_url_password("postgres://u:p@h") == "postgres://u:***@h");
    }
    SECTION("a password containing '@'") {
        CHECK(mask_url_password("amqp://u:p@ss@h:5672/") == "amqp://u:***@h:5672/");
    }
    SECTION("a password containing ':'") {
        CHECK(mask_url_password("postgresql://u:a:b:c@h/db") == "postgresql://u:***@h/db");
    }
    SECTION("a password containing both") {
        CHECK(mask_url_password("amqp://u:a@b:c@d@h/") == "amqp://u:***@h/");
    }
    SECTION("an IPv6 host with a password") {
        CHECK(mask_url_password("amqp://u:p@[::1]:5673/") == "amqp://u:***@[::1]:5673/");
    }
    SECTION("URLs without a password are unchanged") {
        for (const char* url : {"postgresql://rmq2pg@127.0.0.1:5432/app", "amqp://h",
                                "amqp://h:5672/", "amqp://user@h:5672/vh", "amqp://[::1]:5673/",
                                "postgresql:///app?host=/run/postgresql", "not a url at all", ""}) {
            INFO(url);
            CHECK(mask_url_password(url) == url);
        }
    }
    SECTION("an '@' after the authority is not mistaken for user info") {
        CHECK(mask_url_password("amqp://h:5672/v@x") == "amqp://h:5672/v@x");
    }
    SECTION("libpq keyword form") {
        CHECK(mask_url_password("host=x password=secret") == "host=x password=***");
        CHECK(mask_url_password("host=x password=secret dbname=app") ==
              "host=x password=*** dbname=app");
        CHECK(mask_url_password("password = 'two words' host=x") == "password = *** host=x");
        CHECK(mask_url_password("host=x PASSWORD=Secret") == "host=x PASSWORD=***");
        CHECK(mask_url_password("host=x user=bob dbname=app") == "host=x user=bob dbname=app");
    }
    SECTION("a password given as a URL parameter") {
        CHECK(mask_url_password("postgresql://u@h/db?password=secret") ==
              "postgresql://u@h/db?password=***");
    }
    SECTION("several URLs in one text") {
        CHECK(mask_url_password("from amqp://a:b@h1/ to postgresql://c:d@h2/db") ==
              "from amqp://a:***@h1/ to postgresql://c:***@h2/db");
    }
}

// libpq reads everything up to the last '@' before the first '/' as user info, so
// "postgresql://u:p?ss@h/db" connects with password "p?ss"; the log form must hide it too.
TEST_CASE("mask_url_password hides a password containing '?' or '#'", "[amqp_url]") {
    CHECK(mask_url_password("postgresql://u:p?ss@h/db") == "postgresql://u:***@h/db");
    CHECK(mask_url_password("postgresql://u:p#ss@h/db") == "postgresql://u:***@h/db");
}
