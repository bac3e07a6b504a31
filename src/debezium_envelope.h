// A Debezium change event read from its JSON: with the schema wrapper ({"schema":…,
// "payload":{…}}) or bare (schemas.enable=false); its op, the row image it applies (after for
// c/r/u, before for d), the schema of that image's fields, and its version: the change's
// position in the source's log as one exact decimal number (see encode_position).
#pragma once

#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>

namespace rmq2pg {

struct ChangeEvent {
    // change: a row to write (op c, r, u) or delete (d); skip: a tombstone (empty body,
    // "default", null payload) or a truncate, acknowledged without a row.
    enum class Kind { change, skip };
    Kind kind = Kind::change;
    char op = 0;  // 'c', 'r', 'u', 'd', 't'
    bool wrapped = false;
    simdjson::dom::object image;         // the row image to apply (for d: before)
    bool has_image = false;              // a delete may come without before
    simdjson::dom::object image_schema;  // its struct schema (wrapped only)
    bool has_image_schema = false;
    std::string version;    // decimal digits, compared as numeric
    std::string skip_what;  // for skip: "tombstone" or "truncate"
};

// A body that is a tombstone before any parsing: empty, "default" (Debezium Server's AMQP sink
// for a null value), or the JSON literal null.
bool is_tombstone_body(std::string_view body);

// Reads `root` (a parsed body) into `event`. Returns the reason when it is not a change event:
// no op, an unknown op, the image its op needs missing, no position to order it by.
std::optional<std::string> read_change_event(simdjson::dom::element root, ChangeEvent& event);

// The position of a change in its source's log as a decimal number whose numeric order is the
// log's order, from the payload's `source` block (and `ts_ms`):
//   PostgreSQL  source.lsn                                  → lsn
//   MySQL       source.file (binlog N), source.pos, .row    → N·10^40 + pos·10^20 + row
//   SQL Server  source.commit_lsn, .change_lsn, .event_serial_no (hex a:b:c LSNs, 80 bits)
//               → commit·10^50 + change·10^25 + serial
//   otherwise   ts_ms of the payload, else of source
// Nullopt with `error` set when no position can be read.
std::optional<std::string> encode_position(simdjson::dom::object payload, std::string& error);

// For tests: MySQL's binlog file name → its sequence number ("mysql-bin.000003" → 3).
std::optional<std::string> binlog_number(std::string_view file);
// For tests: a SQL Server LSN "00000025:00000d98:0005" → its 80-bit value in decimal.
std::optional<std::string> sqlserver_lsn_decimal(std::string_view lsn);

}  // namespace rmq2pg
