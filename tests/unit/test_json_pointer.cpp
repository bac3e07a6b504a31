// RFC 6901 JSON Pointer syntax checks and token unescaping.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "json_pointer.h"

using rmq2pg::json_pointer_tokens;
using rmq2pg::validate_json_pointer;
using Tokens = std::vector<std::string>;

TEST_CASE("valid JSON pointers pass validation", "[json_pointer]") {
    for (const char* p : {"", "/", "//", "/id", "/a/b/0", "/a~0b", "/a~1b", "/~0~1", "/~01",
                          "/ spaces ok/", "/é/ü", "/-", "/a/"}) {
        INFO("pointer '" << p << "'");
        CHECK_FALSE(validate_json_pointer(p).has_value());
    }
}

TEST_CASE("a pointer must be empty or start with '/'", "[json_pointer]") {
    for (const char* p : {"id", "a/b", "~0", " /id", "#/id"}) {
        INFO("pointer '" << p << "'");
        auto problem = validate_json_pointer(p);
        REQUIRE(problem.has_value());
        CHECK(*problem == "must be empty or start with '/'");
    }
}

TEST_CASE("'~' must be followed by 0 or 1", "[json_pointer]") {
    for (const char* p : {"/~2", "/a~", "/~", "/a~b", "/ok/~~0", "/~0/~x"}) {
        INFO("pointer '" << p << "'");
        auto problem = validate_json_pointer(p);
        REQUIRE(problem.has_value());
        CHECK_THAT(*problem, Catch::StartsWith("'~' must be followed by 0 or 1"));
    }
}

TEST_CASE("tokens are split on '/' and unescaped", "[json_pointer]") {
    SECTION("the root pointer \"\" has no tokens") {
        CHECK(json_pointer_tokens("").empty());
    }
    SECTION("plain tokens") {
        CHECK(json_pointer_tokens("/a/b/0") == Tokens{"a", "b", "0"});
    }
    SECTION("~1 is '/' and ~0 is '~'") {
        CHECK(json_pointer_tokens("/a~1b/c~0") == Tokens{"a/b", "c~"});
        CHECK(json_pointer_tokens("/~0~1") == Tokens{"~/"});
    }
    SECTION("~01 is '~1', not '/' (unescape ~1 before ~0 is wrong)") {
        CHECK(json_pointer_tokens("/~01") == Tokens{"~1"});
        CHECK(json_pointer_tokens("/~10") == Tokens{"/0"});
    }
    SECTION("empty tokens are kept") {
        CHECK(json_pointer_tokens("/") == Tokens{""});
        CHECK(json_pointer_tokens("//") == Tokens{"", ""});
        CHECK(json_pointer_tokens("/a/") == Tokens{"a", ""});
        CHECK(json_pointer_tokens("//b") == Tokens{"", "b"});
    }
    SECTION("other characters are literal") {
        CHECK(json_pointer_tokens("/ a b /-/%25") == Tokens{" a b ", "-", "%25"});
    }
}
