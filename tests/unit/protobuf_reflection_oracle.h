// The reflection printer format: protobuf used before the one-pass converter: the oracle of the
// differential tests in test_protobuf.cpp (tests/unit/protobuf_reflection_oracle.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protobuf_schema.h"

namespace rmq2pg {

// The canonical JSON form of `body` in `json`, or why libprotobuf refused it or the printer
// could not write it.
std::optional<std::string> reflection_json(const ProtobufSchema& schema, std::string_view body,
                                           std::string& json);

}  // namespace rmq2pg
