// Reasons bounded and redacted before they reach a dead letter's headers or a log line.
#include <catch2/catch.hpp>

#include "dead_letter.h"

using namespace rmq2pg;

TEST_CASE("a reason quoting a 256 KiB value is cut to the limit with its original length",
          "[dead_letter]") {
    std::string value(256 * 1024, '7');
    std::string reason =
        "pipeline 'p' (batch of 1): ERROR:  invalid input syntax for type bigint: \"" + value +
        "\"\nCONTEXT:  COPY t, line 1 (SQLSTATE 22P02)";
    std::string bounded = bounded_reason(reason, false);
    CHECK(bounded.size() <= kReasonLimit + 40);
    CHECK(bounded.find("(SQLSTATE 22P02)") != std::string::npos);
    CHECK(bounded.find('\n') == std::string::npos);
    CHECK(bounded.find("invalid input syntax for type bigint") != std::string::npos);
    CHECK(bounded.find("(" + std::to_string(reason.size()) + " bytes in all)") !=
          std::string::npos);
    CHECK(bounded_reason("short reason", false) == "short reason");
}

TEST_CASE("a cut never splits a UTF-8 sequence", "[dead_letter]") {
    std::string text = std::string(7, 'a') + "\xC3\xA9" + std::string(10, 'b');  // é: bytes 7-8
    std::string bounded = bounded_reason(text, false, 10);
    CHECK(bounded.substr(0, 10) == std::string(7, 'a') + "\xE2\x80\xA6");
    CHECK(bounded == std::string(7, 'a') + "\xE2\x80\xA6" + "bb (19 bytes in all)");
}

TEST_CASE("a long quoted value is shortened in place, the rest of the reason kept",
          "[dead_letter]") {
    std::string reason = "invalid input syntax for type numeric: \"" + std::string(5000, 'x') +
                         "\" (SQLSTATE 22P02)";
    std::string bounded = bounded_reason(reason, false);
    CHECK(bounded == "invalid input syntax for type numeric: \"" + std::string(128, 'x') +
                         "\xE2\x80\xA6(5000 bytes)\" (SQLSTATE 22P02) (" +
                         std::to_string(reason.size()) + " bytes in all)");
}

TEST_CASE("redaction keeps PostgreSQL's wording and SQLSTATE, never the values", "[dead_letter]") {
    CHECK(redact_values("invalid input syntax for type bigint: \"12ab\" (SQLSTATE 22P02)") ==
          "invalid input syntax for type bigint: \"\xE2\x80\xA6\" (SQLSTATE 22P02)");
    CHECK(redact_values("DETAIL:  Key (id)=(secret-42) already exists.") ==
          "DETAIL:  Key (id)=(\xE2\x80\xA6) already exists.");
    CHECK(redact_values("column 'amount' from /amount: expected a number, got 'alice@x.org'") ==
          "column 'amount' from /amount: expected a number, got '\xE2\x80\xA6'");
    // An unterminated quote elides the rest rather than leaking it.
    CHECK(redact_values("bad value: \"abc") == "bad value: \"\xE2\x80\xA6");
    std::string bounded =
        bounded_reason("for type bigint: \"" + std::string(100000, 'x') + "\"", true);
    CHECK(bounded == "for type bigint: \"\xE2\x80\xA6\"");
}
