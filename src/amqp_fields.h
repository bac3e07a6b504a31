// AMQP field tables in and out: a header value as the mapping reads it (HeaderValue, nested
// tables and arrays as JSON), the config's typed arguments as a table, a dead letter's headers.
// Pure (no connection): included by the amqp_*.cpp files and by their unit test.
#pragma once

#include <amqp.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "delivery.h"

namespace rmq2pg {

// A field as text of the HeaderValue kind the mapping expects; a table or an array becomes
// JSON, void becomes json "" (no value).
HeaderValue convert_field(const amqp_field_value_t& value);

// Delivery::find_header for a delivery's amqp_table_t: the first entry named `name`, or nullopt
// when there is none or its value is void.
std::optional<HeaderValue> find_header_in_table(const void* headers, std::string_view name);

// The config's typed arguments as a field table; `entries` owns the array and the table
// points into `arguments`' strings.
amqp_table_t to_table(const std::vector<AmqpArgument>& arguments,
                      std::vector<amqp_table_entry_t>& entries);

// `properties` with `original` headers (if any) followed by `extra` string headers; an original
// header named like an extra one is dropped (a message dead-lettered twice keeps only the latest
// reason). Messages without a delivery mode become persistent. `entries` owns the table.
amqp_basic_properties_t with_headers(amqp_basic_properties_t properties,
                                     const amqp_table_t* original,
                                     const std::vector<std::pair<std::string, std::string>>& extra,
                                     std::vector<amqp_table_entry_t>& entries);

// A deep copy of `table` (keys, strings, nested tables and arrays) in one block, which `block`
// owns afterwards; every pointer of the returned table points into it. What a delivery keeps of
// its headers once rabbitmq-c recycles its buffers: one allocation, where amqp_table_clone()
// takes a pool (its page list and zeroed pages) per message — a stream's every message has a
// header (x-stream-offset), and that clone was a tenth of the daemon's CPU on a stream.
amqp_table_t copy_table(const amqp_table_t& table, std::unique_ptr<std::max_align_t[]>& block);

}  // namespace rmq2pg
