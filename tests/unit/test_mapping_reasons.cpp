// Reasons for unmappable messages: values cut to a bounded size without splitting a UTF-8
// character, and the UTF-8 check that names the first bad byte.
#include <catch2/catch.hpp>

#include <string>

#include "mapping_reasons.h"

using rmq2pg::first_invalid_utf8;
using rmq2pg::quoted_value;

TEST_CASE("a value up to 200 bytes is quoted whole", "[mapping_reasons]") {
    CHECK(quoted_value("") == "");
    CHECK(quoted_value("1e400") == "1e400");
    const std::string max(200, 'x');
    CHECK(quoted_value(max) == max);
}

TEST_CASE("a longer value is cut to 200 bytes with an ellipsis and its length",
          "[mapping_reasons]") {
    const std::string big(256 * 1024, 'x');
    const std::string quoted = quoted_value(big);
    CHECK(quoted == std::string(200, 'x') + "… (262144 bytes)");
    CHECK(quoted_value(std::string(201, 'y')) == std::string(200, 'y') + "… (201 bytes)");
    SECTION("the cut never splits a UTF-8 character") {
        // 199 ASCII bytes, then "é" (2 bytes) straddles the 200-byte mark.
        const std::string value = std::string(199, 'a') + "\xC3\xA9" + std::string(50, 'b');
        CHECK(quoted_value(value) == std::string(199, 'a') + "… (251 bytes)");
        const std::string snowmen = [] {
            std::string s;
            for (int i = 0; i < 100; ++i)
                s += "\xE2\x98\x83";  // ☃, 3 bytes: the 200-byte mark falls inside the 67th
            return s;
        }();
        CHECK(quoted_value(snowmen).substr(0, 198) == snowmen.substr(0, 198));
        CHECK(quoted_value(snowmen) == snowmen.substr(0, 198) + "… (300 bytes)");
    }
}

TEST_CASE("first_invalid_utf8 finds the first byte that is not part of a character",
          "[mapping_reasons]") {
    CHECK(first_invalid_utf8("") == 0);
    CHECK(first_invalid_utf8("plain ascii") == 11);
    CHECK(first_invalid_utf8("caf\xC3\xA9 \xE2\x98\x83 \xF0\x9F\x98\x80") == 14);
    CHECK(first_invalid_utf8("\xFF") == 0);
    CHECK(first_invalid_utf8("ab\x80") == 2);            // a continuation byte first
    CHECK(first_invalid_utf8("ab\xC3") == 2);            // cut short at the end
    CHECK(first_invalid_utf8("ab\xC3(") == 2);           // lead byte without its continuation
    CHECK(first_invalid_utf8("\xC0\xAF") == 0);          // overlong "/"
    CHECK(first_invalid_utf8("\xE0\x80\xAF") == 0);      // overlong, 3 bytes
    CHECK(first_invalid_utf8("\xF0\x80\x80\xAF") == 0);  // overlong, 4 bytes
    CHECK(first_invalid_utf8("x\xED\xA0\x80") == 1);     // a UTF-16 surrogate (U+D800)
    CHECK(first_invalid_utf8("\xF4\x90\x80\x80") == 0);  // above U+10FFFF
    CHECK(first_invalid_utf8("\xF4\x8F\xBF\xBF") == 4);  // U+10FFFF itself
    CHECK(first_invalid_utf8("\xEF\xBB\xBF{}") == 5);    // a byte order mark is a character
}
