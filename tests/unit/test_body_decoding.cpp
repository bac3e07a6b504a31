// content_encoding: gzip and deflate bodies decompressed before mapping, under the
// max_message_bytes cap; unknown encodings and broken streams named in the reason.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <string>
#include <string_view>

#include "body_decoding.h"

using rmq2pg::decode_body;

namespace {

// window: 16 + 15 gzip, 15 zlib, -15 raw deflate.
std::string compress(std::string_view data, int window) {
    z_stream s{};
    REQUIRE(deflateInit2(&s, Z_BEST_COMPRESSION, Z_DEFLATED, window, 9, Z_DEFAULT_STRATEGY) ==
            Z_OK);
    std::string out(deflateBound(&s, static_cast<uLong>(data.size())) + 64, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    s.avail_in = static_cast<uInt>(data.size());
    s.next_out = reinterpret_cast<Bytef*>(&out[0]);
    s.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
    out.resize(s.total_out);
    deflateEnd(&s);
    return out;
}

struct Decoded {
    std::string body;
    std::string error;
};

Decoded decode(std::string_view encoding, std::string_view raw, std::size_t max = 1 << 20) {
    std::string scratch;
    std::string_view body;
    auto error = decode_body(encoding, raw, max, scratch, body);
    return {std::string(body), error ? *error : ""};
}

}  // namespace

TEST_CASE("a body without content_encoding or with identity is mapped as it came",
          "[body_decoding]") {
    CHECK(decode("", "{\"id\":1}").body == "{\"id\":1}");
    CHECK(decode("identity", "{\"id\":1}").body == "{\"id\":1}");
}

TEST_CASE("gzip and deflate bodies are decompressed, whatever the case of the encoding",
          "[body_decoding]") {
    const std::string json = "{\"id\": 42, \"note\": \"" + std::string(5000, 'x') + "\"}";
    CHECK(decode("gzip", compress(json, 16 + 15)).body == json);
    CHECK(decode("GZIP", compress(json, 16 + 15)).body == json);
    CHECK(decode("x-gzip", compress(json, 16 + 15)).body == json);
    SECTION("deflate as HTTP means it (zlib-wrapped) and as many producers send it (raw)") {
        CHECK(decode("deflate", compress(json, 15)).body == json);
        CHECK(decode("deflate", compress(json, -15)).body == json);
    }
    SECTION("gzip members one after the other are one body") {
        CHECK(decode("gzip", compress("{\"a\":", 31) + compress("1}", 31)).body == "{\"a\":1}");
    }
    SECTION("an empty body compresses to an empty body") {
        CHECK(decode("gzip", compress("", 31)).body.empty());
    }
}

TEST_CASE("an unknown content_encoding is poison naming it", "[body_decoding]") {
    auto d = decode("br", "xyz");
    CHECK(d.error.find("content_encoding 'br'") != std::string::npos);
    CHECK(d.error.find("gzip, deflate") != std::string::npos);
}

TEST_CASE("a body that is not what its encoding says is poison with zlib's reason",
          "[body_decoding]") {
    CHECK(decode("gzip", "{\"id\":1}").error.find("gzip body does not decompress") !=
          std::string::npos);
    std::string gz = compress(std::string(10000, 'a'), 31);
    CHECK(decode("gzip", gz.substr(0, gz.size() / 2)).error.find("cut short") != std::string::npos);
    CHECK(decode("deflate", compress("{}", 15) + "junk").error.find("after the end") !=
          std::string::npos);
}

TEST_CASE("a body that decompresses beyond max_message_bytes is poison before it is held",
          "[body_decoding]") {
    // 64 MiB of zeros compress to ~64 KB: decompressing stops at the cap (1 MiB here).
    std::string bomb = compress(std::string(64 << 20, '\0'), 31);
    CHECK(bomb.size() < 200 * 1024);
    std::string scratch;
    std::string_view body;
    auto error = decode_body("gzip", bomb, 1 << 20, scratch, body);
    REQUIRE(error);
    CHECK(error->find("more than max_message_bytes 1048576") != std::string::npos);
    CHECK(scratch.capacity() < 4u << 20);
    SECTION("exactly the cap is allowed") {
        std::string exact(1 << 20, 'a');
        CHECK(decode("gzip", compress(exact, 31), 1 << 20).body == exact);
    }
}
