// The configuration: one struct with every key and its default (the single source of truth that
// docs/config.md mirrors), and the YAML loader that fills and validates it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "amqp_url.h"
#include "stream_start.h"

namespace rmq2pg {

class ProtobufSchema;

// Where a column's value comes from in a delivery.
struct ColumnSource {
    enum class Kind {
        json_pointer,   // RFC 6901 pointer into a JSON body
        body,           // $body
        routing_key,    // $routing_key
        exchange,       // $exchange
        message_id,     // $message_id
        timestamp,      // $timestamp (AMQP basic.properties timestamp)
        content_type,   // $content_type
        header,         // $header.NAME
        parent_column,  // $parent.COLUMN: the parent row's value of COLUMN (children only)
        element_index,  // $index: the element's position in its array, from 0 (children only)
        stream_offset,  // $stream_offset (streams: the delivery's x-stream-offset)
    };
    Kind kind = Kind::body;
    std::string argument;  // the pointer for json_pointer, the header name for header, the
                           // parent's column for parent_column
    // format: protobuf: the pointer reads a `bytes` field, base64 in the JSON form, which a bytea
    // column takes decoded (set by ProtobufSchema::apply_names).
    bool base64 = false;
};

struct ColumnMapping {
    std::string column;
    std::string source_text;  // as written in the config, for messages
    ColumnSource source;
    std::optional<std::string> default_value;  // used when the source is null or missing
    bool required = false;                     // null or missing makes the message poison
    // Columns by name: the column's DEFAULT expression ("" when it has none). A message without
    // the field (absent, not null) gets the DEFAULT, not NULL (write_plan.h).
    std::string column_default = {};
};

enum class WriteMode { insert, ignore, upsert };
// How a body is read: a JSON document (columns are pointers into it), a Debezium change
// event (columns are fields of its row image; see debezium_envelope.h), or a Protocol Buffers
// message, read as its canonical JSON form (protobuf_decoder.h).
enum class MessageFormat { json, debezium, protobuf };

// format: protobuf: protobuf: { descriptor_set: FILE, message: full.Name }.
struct ProtobufConfig {
    std::string descriptor_set;  // as written
    std::string message;
    std::shared_ptr<const ProtobufSchema> schema;  // loaded with the config; shared read-only
};
enum class OnTruncate { ignore, truncate };
enum class SchemaEvolution { none, basic };
enum class OnError { dead_letter, reject, stop };

struct BatchLimits {
    std::size_t max_messages = 1000;
    std::size_t max_bytes = 4 * 1024 * 1024;
    std::int64_t max_delay_ms = 50;
};

struct DeadLetterTarget {
    std::string exchange;     // "" = the default exchange
    std::string routing_key;  // "" = "<queue>.dead"
};

// A queue or binding argument ("x-queue-type": quorum, "x-max-length": 1000, ...), typed as
// the YAML scalar was written, since RabbitMQ compares argument types too.
struct AmqpArgument {
    enum class Type { string, integer, boolean };
    std::string name;
    Type type = Type::string;
    std::string text;
    std::int64_t integer = 0;
    bool boolean = false;
};

struct ExchangeConfig {
    std::string name;
    std::string type = "direct";  // direct | topic | fanout | headers
    bool durable = true;
};

struct BindingConfig {
    std::string exchange;
    std::string routing_key;
    std::vector<AmqpArgument> arguments;
};

// pipelines[].declare: the queue rmq2pg declares (idempotently) before consuming.
struct QueueDeclaration {
    bool passive = false;  // only check that the queue exists
    bool durable = true;
    std::string type = "classic";  // classic | quorum | stream (x-queue-type)
    std::string dead_letter_exchange;
    std::vector<AmqpArgument> arguments;
    std::vector<BindingConfig> bindings;
};

// delete_when: { field: /op, equals: "delete" } — the message deletes the row with its key.
struct DeleteRule {
    std::string field;  // a JSON Pointer
    std::string equals;
};

// Where and how messages are written: a pipeline's own table, or one of its routes.
struct TargetConfig {
    std::string match = "#";  // routing-key pattern (AMQP topic semantics); routes only
    std::string table_schema = "public";
    std::string table_name;
    WriteMode mode = WriteMode::insert;
    std::vector<std::string> key;  // empty with columns by name: the table's primary key
    // Empty = by name: every column of the table takes the top-level field of the same name
    // (the catalog's columns, resolved by the writer at connect; see resolve_by_name).
    std::vector<ColumnMapping> columns;
    bool columns_by_name = false;  // set by resolve_target when `columns` was omitted
    std::string version;  // upsert applies only when this column's incoming value is greater
    std::optional<DeleteRule> delete_when;
    // children: rows of other tables made from arrays of the same message and written in the
    // same transaction (aggregate.h). A child's own `from` is the JSON Pointer of its array in
    // its parent's document; with `replace`, the parent's existing children are deleted first.
    std::vector<TargetConfig> children;
    std::string from;
    bool replace = false;

    std::string qualified_table() const { return table_schema + "." + table_name; }
};

// A queue → table(s) flow. Without `routes:` the pipeline's own TargetConfig is its only
// target; with them, each route is one.
struct PipelineConfig : TargetConfig {
    std::string name;
    std::string queue;
    // Streams (instead of `queue`): each is read from its offset stored in rmq2pg_state, written
    // in the batch's own transaction; the workers of all instances share them by leases.
    std::vector<std::string> streams;
    StreamStart start;  // where a stream with no stored offset begins
    int lease_s = 10;   // a partition's owner that stops renewing loses it after this
    MessageFormat format = MessageFormat::json;
    ProtobufConfig protobuf;                                   // format: protobuf
    OnTruncate on_truncate = OnTruncate::ignore;               // debezium: what op "t" does
    SchemaEvolution schema_evolution = SchemaEvolution::none;  // debezium
    int workers = 1;
    int prefetch = 2000;
    BatchLimits batch;
    std::vector<TargetConfig> routes;
    std::optional<QueueDeclaration> declare;  // absent: the queue is consumed as it exists
    std::string dedupe;  // "" = off, "message_id", or a JSON Pointer into the body
    std::int64_t dedupe_retention_s = 7 * 24 * 3600;
    std::int64_t tombstone_retention_s = 7 * 24 * 3600;
    OnError on_error = OnError::dead_letter;
    DeadLetterTarget dead_letter;
    int max_redeliveries = 0;  // 0 = unlimited
    // A message whose body is larger is poison ("… exceeds max_message_bytes"); it is still
    // dead-lettered whole (the broker's own max_message_size bounds what can arrive).
    std::size_t max_message_bytes = 64 * 1024 * 1024;
    // Bytes of bodies one worker holds (batch + backlog): above it the worker stops reading its
    // socket until the batch is written, so memory is bounded in bytes and not only by prefetch.
    std::size_t max_inflight_bytes = 256 * 1024 * 1024;
    // The pipeline's YAML node as written (before ${VAR} expansion): a reload restarts the
    // pipeline when this differs. An environment variable changed alone is not a change.
    std::string fingerprint;

    // The targets messages are routed to, tried in order.
    std::vector<const TargetConfig*> targets() const {
        std::vector<const TargetConfig*> out;
        if (routes.empty())
            out.push_back(this);
        for (const auto& r : routes)
            out.push_back(&r);
        return out;
    }
    bool is_stream() const { return !streams.empty(); }
    bool declares_dead_letter_queue() const { return dead_letter.exchange.empty(); }
    // `source`: the queue, or the stream a message was read from.
    std::string dead_letter_routing_key(std::string_view source = {}) const {
        if (!dead_letter.routing_key.empty())
            return dead_letter.routing_key;
        return (source.empty() ? queue : std::string(source)) + ".dead";
    }
};

// http: { listen: "127.0.0.1:9187" }: the observability endpoints (docs/operations.md).
struct HttpConfig {
    std::string listen;  // as written; "" = no HTTP server
    std::string host;    // without brackets: "127.0.0.1", "::1", "localhost"
    int port = 0;

    bool enabled() const { return !listen.empty(); }
};

struct RetryConfig {
    std::int64_t initial_ms = 100;
    std::int64_t max_ms = 30000;
};

struct Config {
    std::string source_file;
    std::vector<AmqpUrl> amqp_urls;  // each with amqp.tls and amqp.password_file applied
    int heartbeat_s = 30;
    // The shared AMQP connections the queue consumers use (amqp_hub.h): 0 = automatic (shared
    // only in pooled mode, one per kChannelsPerHub consumers); K > 0 = exactly K, shared by
    // every queue worker. See hub_count().
    int amqp_connections = 0;
    AmqpTlsOptions amqp_tls;
    std::string amqp_password_file;  // "" = the URLs' own passwords
    // As written, plus the password of postgres.password_file (mask_url_password hides it).
    std::string postgres_url;
    std::string postgres_password_file;
    // Deadline of each write (every statement of a batch and its COMMIT): past it the write is
    // cancelled, the connection dropped and rebuilt, the batch retried.
    std::int64_t postgres_write_timeout_ms = 30000;
    // Deadline of establishing a PostgreSQL connection (TCP, TLS, authentication).
    std::int64_t postgres_connect_timeout_s = 10;
    // The PostgreSQL connections of the whole daemon: when the pipelines' workers add up to more,
    // they borrow from a pool of this many for each write (pooled mode; see uses_pg_pool).
    int postgres_pool_size = 16;
    // Pooled connections a pipeline already holding one may not take: kept for pipelines
    // holding none, so a quiet pipeline's batch does not queue behind a busy one's (capped at
    // pool_size - 1; 0 = no reserve).
    int postgres_pool_reserve = 1;
    std::int64_t shutdown_timeout_ms = 10000;
    std::int64_t startup_timeout_s = 0;  // 0 = keep retrying forever
    std::string log_level = "info";
    std::string log_format = "text";  // text | json (one JSON object per line)
    // Keep message contents (values quoted in PostgreSQL's errors, bodies) out of log lines and
    // dead-letter headers: reasons keep their SQLSTATE and wording, the values become "…".
    bool log_redact_values = false;
    HttpConfig http;
    RetryConfig retry;
    std::vector<ExchangeConfig> exchanges;  // declared (idempotently) before any queue
    std::vector<PipelineConfig> pipelines;
    // amqp, postgres, retry and exchanges as written (before ${VAR} expansion), plus a hash of
    // each file they name (password files, TLS CA/certificate/key): every worker uses them, so a
    // reload that changes them — a rotated password or certificate too — restarts every pipeline.
    std::string connection_fingerprint;
};

// Whether the workers write through the bounded pool (postgres.pool_size) rather than each
// through a connection of its own: only when they would otherwise open more than the pool's
// size. Below it a dedicated connection per worker costs nothing the pool would save, skips a
// borrow per batch, and keeps each worker's connection named after it in pg_stat_activity.
bool uses_pg_pool(const Config& config);

// Every problem found in a config file, one line each ("file:line: key: what is wrong").
class ConfigError : public std::runtime_error {
  public:
    explicit ConfigError(std::vector<std::string> problems);
    const std::vector<std::string>& problems() const { return problems_; }

  private:
    std::vector<std::string> problems_;
};

// Reads, expands ${VAR} from the environment, and validates. Throws ConfigError.
Config load_config_file(const std::string& path);
// The same from text already in memory; `source_name` is what error lines call the file.
Config load_config_text(const std::string& yaml_text, const std::string& source_name);

const char* to_string(WriteMode mode);
const char* to_string(OnError on_error);

}  // namespace rmq2pg
