// Decoding of compressed bodies; see body_decoding.h. Design: zlib's inflate runs as a stream
// into `scratch`, which grows by one chunk at a time and never beyond max_bytes plus a chunk:
// the size a gzip trailer or a producer declares is never trusted, so a body that says 1 GiB
// (or 10 KB that inflate to 1 GiB) costs at most max_message_bytes of memory before it is poison.
#include "body_decoding.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace rmq2pg {

namespace {

// Output grows by this much per inflate() call: large enough that a 64 MiB body needs few
// reallocations, small enough that a bomb overshoots the cap by little.
constexpr std::size_t kChunk = 256 * 1024;

enum class Wrapper { gzip, zlib, raw };

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// HTTP's "deflate" is zlib-wrapped (RFC 9110), yet many producers send the raw stream: a zlib
// header is two bytes whose big-endian value is a multiple of 31 with method 8, which a raw
// stream's first bytes rarely are.
Wrapper deflate_wrapper(std::string_view raw) {
    if (raw.size() >= 2) {
        auto b0 = static_cast<unsigned char>(raw[0]), b1 = static_cast<unsigned char>(raw[1]);
        if ((b0 & 0x0f) == 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 == 0)
            return Wrapper::zlib;
    }
    return Wrapper::raw;
}

struct InflateEnd {
    void operator()(z_stream* stream) const {
        inflateEnd(stream);
        delete stream;
    }
};

std::optional<std::string> inflate_capped(const char* name, Wrapper wrapper, std::string_view raw,
                                          std::size_t max_bytes, std::string& out) {
    int window = wrapper == Wrapper::gzip   ? 16 + MAX_WBITS
                 : wrapper == Wrapper::zlib ? MAX_WBITS
                                            : -MAX_WBITS;
    auto* bare = new z_stream{};
    if (inflateInit2(bare, window) != Z_OK) {
        delete bare;
        return std::string(name) + " body: zlib could not start (out of memory)";
    }
    std::unique_ptr<z_stream, InflateEnd> stream(bare);
    out.clear();
    stream->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
    // uInt is 32 bits; max_message_bytes bounds the received size below 4 GiB in practice, but
    // the input is fed in slices so that nothing depends on it.
    std::size_t fed = 0;
    auto feed = [&] {
        std::size_t slice = std::min<std::size_t>(raw.size() - fed, 1u << 30);
        stream->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data() + fed));
        stream->avail_in = static_cast<uInt>(slice);
        fed += slice;
    };
    feed();
    while (true) {
        if (out.size() > max_bytes)
            return std::string(name) + " body decompresses to more than max_message_bytes " +
                   std::to_string(max_bytes) + " (stopped after " + std::to_string(out.size()) +
                   " bytes)";
        std::size_t before = out.size();
        out.resize(before + kChunk);
        stream->next_out = reinterpret_cast<Bytef*>(&out[before]);
        stream->avail_out = static_cast<uInt>(kChunk);
        int rc = inflate(stream.get(), Z_NO_FLUSH);
        out.resize(before + (kChunk - stream->avail_out));
        if (stream->avail_in == 0 && fed < raw.size())
            feed();
        if (rc == Z_STREAM_END) {
            std::size_t left = stream->avail_in + (raw.size() - fed);
            if (left == 0)
                break;
            // gzip allows several members one after the other (`cat a.gz b.gz`); anything else
            // after the end of the stream is not part of it.
            if (wrapper != Wrapper::gzip)
                return std::string(name) + " body has " + std::to_string(left) +
                       " bytes after the end of its compressed stream";
            if (inflateReset(stream.get()) != Z_OK)
                return std::string(name) + " body: zlib could not continue";
            continue;
        }
        if (rc == Z_BUF_ERROR && stream->avail_in == 0 && fed == raw.size())
            return std::string(name) + " body is cut short (the compressed stream does not end)";
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            std::string why = stream->msg != nullptr ? stream->msg : zError(rc);
            return std::string(name) + " body does not decompress: " + why;
        }
    }
    if (out.size() > max_bytes)
        return std::string(name) + " body decompresses to " + std::to_string(out.size()) +
               " bytes, more than max_message_bytes " + std::to_string(max_bytes);
    return std::nullopt;
}

}  // namespace

std::optional<std::string> decode_body(std::string_view content_encoding, std::string_view raw,
                                       std::size_t max_bytes, std::string& scratch,
                                       std::string_view& body) {
    std::string encoding = lower(content_encoding);
    if (encoding.empty() || encoding == "identity") {
        body = raw;
        return std::nullopt;
    }
    std::optional<std::string> error;
    if (encoding == "gzip" || encoding == "x-gzip")
        error = inflate_capped("gzip", Wrapper::gzip, raw, max_bytes, scratch);
    else if (encoding == "deflate")
        error = inflate_capped("deflate", deflate_wrapper(raw), raw, max_bytes, scratch);
    else
        return "content_encoding '" + std::string(content_encoding).substr(0, 100) +
               "' is not one rmq2pg decodes (gzip, deflate, identity)";
    if (error)
        return error;
    body = scratch;
    return std::nullopt;
}

}  // namespace rmq2pg
