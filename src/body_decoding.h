// A body as its producer's content_encoding says (gzip, deflate, identity) turned into the bytes
// the mapping reads, decompressed under a cap so that a zip bomb never reaches memory. The only
// file that includes zlib. Pure: no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rmq2pg {

// The body to map for `raw` sent with `content_encoding` (AMQP basic.properties; "" when absent):
// `raw` itself for no encoding or "identity", else its decompressed bytes, written into `scratch`
// (reused across messages). Returns the reason the message is poison instead: an unknown
// encoding (named), data zlib refuses (zlib's reason), or a decompressed size above `max_bytes`,
// found while inflating: at most max_bytes + one chunk is ever held.
std::optional<std::string> decode_body(std::string_view content_encoding, std::string_view raw,
                                       std::size_t max_bytes, std::string& scratch,
                                       std::string_view& body);

}  // namespace rmq2pg
