// libpqxx behind PgWriter. Design: a batch is one transaction, run as write_plan.cpp plans it:
// insert mode COPYs the rows straight into the table; the other modes create a temporary staging
// table inside the batch's transaction (ON COMMIT DROP), COPY into it and run plain statements.
// Nothing outlives the transaction on the server (no temporary table kept between batches, no
// named prepared statement, no session SET: SET LOCAL only, no session advisory lock), so a
// pooler in transaction mode may give every transaction another server connection. Every batch
// statement runs under SET LOCAL statement_timeout (the server's deadline); interrupt() is the
// client's for a server that never answers. COMMIT is the last statement; the caller acks only
// after write() returned. libpqxx exceptions are mapped to WriteError kinds by SQLSTATE class,
// so the worker knows whether to reconnect, retry or isolate a row.
#include "pg_writer.h"

#include <libpq-fe.h>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <sys/socket.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <utility>

#include "aggregate_plan.h"
#include "columns_by_name.h"
#include "migration_sql.h"
#include "pg_schema_evolution.h"
#include "pg_stream_state.h"
#include "write_plan.h"

namespace rmq2pg {

namespace {

TypeCategory category_of(const std::string& typname, const std::string& typcategory) {
    if (typcategory == "A")
        return TypeCategory::array;
    if (typname == "json" || typname == "jsonb")
        return TypeCategory::json;
    if (typname == "bool")
        return TypeCategory::boolean;
    if (typname == "bytea")
        return TypeCategory::bytea;
    if (typname == "timestamp" || typname == "timestamptz" || typname == "date")
        return TypeCategory::timestamp;
    return TypeCategory::text;
}

std::optional<std::size_t> blamed_copy_line(const std::string& message) {
    // PostgreSQL's CONTEXT line for COPY errors: "CONTEXT:  COPY orders, line 37, column ...".
    // Scanned by hand (std::regex recurses per character: a 100 KB value would overflow the
    // stack), and only as a hint: the message text repeats the bad value, which may itself
    // look like a CONTEXT line, so the worker re-tries a blamed row alone before calling it
    // poison.
    static const std::string marker = "CONTEXT:  COPY ";
    std::size_t at = message.find(marker);
    if (at == std::string::npos)
        return std::nullopt;
    std::size_t line = message.find(", line ", at + marker.size());
    std::size_t end_of_line = message.find('\n', at);
    if (line == std::string::npos || (end_of_line != std::string::npos && line > end_of_line))
        return std::nullopt;
    std::size_t value = 0;
    int digits = 0;
    for (std::size_t i = line + 7; i < message.size() && digits < 10; ++i, ++digits) {
        char c = message[i];
        if (c < '0' || c > '9')
            break;
        value = value * 10 + static_cast<std::size_t>(c - '0');
    }
    if (digits == 0 || value == 0)
        return std::nullopt;
    return value - 1;
}

// The SQLSTATE of a libpqxx error. libpqxx 6.4 leaves it empty for a few errors it gives a type
// of their own (its result.cxx throws insufficient_privilege and the class 40 errors without the
// code): the type says it then. Without this, "permission denied" read as a lost connection.
std::string sqlstate_of(const pqxx::failure& e) {
    if (auto sql = dynamic_cast<const pqxx::sql_error*>(&e); sql && !sql->sqlstate().empty())
        return sql->sqlstate();
    if (dynamic_cast<const pqxx::insufficient_privilege*>(&e))
        return "42501";
    if (dynamic_cast<const pqxx::serialization_failure*>(&e))
        return "40001";
    if (dynamic_cast<const pqxx::deadlock_detected*>(&e))
        return "40P01";
    if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e))
        return "40003";
    if (dynamic_cast<const pqxx::transaction_rollback*>(&e))
        return "40000";
    return {};
}

std::string sqlstate_suffix(const std::string& state) {
    return state.empty() ? "" : " (SQLSTATE " + state + ")";
}

// Runs `body`, translating libpqxx exceptions into WriteError.
template <typename F>
auto translate_errors(const std::string& context, F&& body, const std::size_t* target = nullptr)
    -> decltype(body()) {
    try {
        return body();
    } catch (const WriteError&) {
        throw;
    } catch (const pqxx::in_doubt_error& e) {
        throw WriteError(WriteError::Kind::outcome_unknown, context + ": " + one_line(e.what()));
    } catch (const pqxx::broken_connection& e) {
        throw WriteError(WriteError::Kind::connection, context + ": " + one_line(e.what()));
    } catch (const pqxx::transaction_rollback& e) {
        // Serialization failure, deadlock: the transaction is gone, the connection is fine.
        std::string state = sqlstate_of(e);
        throw WriteError(WriteError::Kind::transient,
                         context + ": " + one_line(e.what()) + sqlstate_suffix(state), state);
    } catch (const pqxx::sql_error& e) {
        std::string state = sqlstate_of(e);
        WriteError::Kind kind =
            state.empty() ? WriteError::Kind::connection : classify_sqlstate(state);
        throw WriteError(kind, context + ": " + one_line(e.what()) + sqlstate_suffix(state), state,
                         blamed_copy_line(e.what()), target ? *target : 0);
    } catch (const pqxx::failure& e) {
        // libpqxx reports a dropped connection during COPY as a plain failure.
        throw WriteError(WriteError::Kind::connection, context + ": " + one_line(e.what()));
    }
}

bool state_tables_exist(pqxx::transaction_base& tx) {
    return tx
        .exec(
            "SELECT to_regclass('rmq2pg_state.inbox') IS NOT NULL AND "
            "to_regclass('rmq2pg_state.tombstones') IS NOT NULL")[0][0]
        .as<bool>();
}

TableSchema read_table(pqxx::transaction_base& tx, const PipelineConfig& pipeline,
                       const TargetConfig& target) {
    TableSchema table;
    table.schema = target.table_schema;
    table.name = target.table_name;
    std::string qualified = quote_ident(table.schema) + "." + quote_ident(table.name);
    auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", qualified);
    if (!exists[0][0].as<bool>()) {
        // schema_evolution: basic creates it from the first change that carries its schema.
        if (pipeline.schema_evolution == SchemaEvolution::basic) {
            table.exists = false;
            return table;
        }
        throw WriteError(WriteError::Kind::schema, "table " + qualified + " does not exist");
    }
    auto columns = tx.exec_params(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory, "
        "a.attnotnull, a.attgenerated <> '' OR a.attidentity = 'a', "
        // An identity column BY DEFAULT has no pg_attrdef row: nextval of its sequence.
        "CASE WHEN a.attidentity = 'd' THEN format('nextval(%L::regclass)', "
        "pg_get_serial_sequence($1, a.attname)) "
        "WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        qualified);
    for (const auto& row : columns) {
        ColumnInfo column;
        column.name = row[0].as<std::string>();
        column.type_name = row[1].as<std::string>();
        column.category = category_of(row[2].as<std::string>(), row[3].as<std::string>());
        column.not_null = row[4].as<bool>();
        column.generated = row[5].as<bool>();
        if (!row[6].is_null())
            column.default_expr = row[6].as<std::string>();
        table.columns.push_back(column);
    }
    auto primary = tx.exec_params(
        "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY "
        "AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n",
        qualified);
    for (const auto& row : primary)
        table.primary_key.push_back(row[0].as<std::string>());
    const TargetConfig resolved = resolve_target(pipeline, target, table);
    const ColumnInfo* version = table.find(resolved.version);
    if (pipeline.format == MessageFormat::debezium && version != nullptr &&
        version->type_name.rfind("numeric", 0) != 0)
        throw WriteError(WriteError::Kind::schema,
                         "pipeline '" + pipeline.name + "': format debezium orders changes by " +
                             "positions of up to 70 digits, which column '" + resolved.version +
                             "' of " + qualified + " (" + version->type_name +
                             ") cannot hold or compare: ALTER TABLE " + qualified +
                             " ALTER COLUMN " + quote_ident(resolved.version) + " TYPE numeric");
    if (pipeline.format == MessageFormat::debezium && version == nullptr)
        throw WriteError(WriteError::Kind::schema,
                         "pipeline '" + pipeline.name + "': format debezium keeps each row's " +
                             "source position in column '" + resolved.version + "', which " +
                             qualified + " lacks: ALTER TABLE " + qualified + " ADD COLUMN " +
                             quote_ident(resolved.version) + " numeric");
    if (resolved.mode != WriteMode::insert && resolved.key.empty())
        throw WriteError(WriteError::Kind::schema,
                         "pipeline '" + pipeline.name + "': " + qualified +
                             " has no primary key, so mode " + to_string(target.mode) +
                             " needs key: in the config");
    for (const auto& mapping : resolved.columns) {
        if (table.find(mapping.column) == nullptr)
            throw WriteError(WriteError::Kind::schema, "pipeline '" + pipeline.name +
                                                           "': column '" + mapping.column +
                                                           "' does not exist in " + qualified);
    }
    if (target.mode != WriteMode::insert) {
        // ON CONFLICT (key) needs a unique index on exactly those columns.
        auto indexes = tx.exec_params(
            "SELECT array_to_string(array_agg(a.attname::text ORDER BY a.attname), ',') "
            "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid",
            qualified);
        std::vector<std::string> key = resolved.key;
        std::sort(key.begin(), key.end());
        std::string wanted;
        for (const auto& k : key)
            wanted += (wanted.empty() ? "" : ",") + k;
        bool found = false;
        for (const auto& row : indexes)
            found = found || row[0].as<std::string>() == wanted;
        if (!found)
            throw WriteError(WriteError::Kind::schema,
                             "pipeline '" + pipeline.name + "': mode " + to_string(target.mode) +
                                 " needs a unique index or constraint on (" + wanted + ") of " +
                                 qualified + ", and there is none");
    }
    if (pipeline.is_stream() &&
        !tx.exec("SELECT to_regclass('rmq2pg_state.stream_offsets') IS NOT NULL AND "
                 "to_regclass('rmq2pg_state.stream_members') IS NOT NULL")[0][0]
             .as<bool>())
        throw WriteError(WriteError::Kind::schema,
                         "pipeline '" + pipeline.name +
                             "': streams keep their offsets in rmq2pg_state.stream_offsets: run "
                             "rmq2pg --migrate --config FILE");
    bool needs_state = !pipeline.dedupe.empty() || (target.delete_when && !target.version.empty());
    if (needs_state && !state_tables_exist(tx))
        throw WriteError(WriteError::Kind::schema,
                         "pipeline '" + pipeline.name +
                             "': dedupe and deletes need rmq2pg's tables (rmq2pg_state.inbox, "
                             "rmq2pg_state.tombstones): run rmq2pg --migrate --config FILE");
    return table;
}

// The first statement of every transaction: the server cancels any statement of it that runs
// longer than the write deadline (SQLSTATE 57014, retried). SET LOCAL ends with the transaction.
std::string statement_timeout(const PgConnectionSettings& settings) {
    return "SET LOCAL statement_timeout = " + std::to_string(settings.write_timeout_ms);
}

// Streams: a worker frozen inside a transaction (SIGSTOP, a paused VM) holds its rows of
// rmq2pg_state.stream_offsets locked, and the heirs of its leases would wait on them for good.
// The server ends such a session after half a lease, so takeover is never blocked by a lock.
std::string stream_idle_timeout(const PipelineConfig& pipeline) {
    if (!pipeline.is_stream())
        return "";
    return "; SET LOCAL idle_in_transaction_session_timeout = " +
           std::to_string(std::max(1000, pipeline.lease_s * 500));
}

// A value in a key=value connection string: single-quoted, quotes and backslashes escaped.
std::string conninfo_value(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "'";
}

// Whether the foreign key of `child` to `parent` deletes it ON DELETE CASCADE: then a parent's
// delete leaves the children to PostgreSQL (aggregate_plan.h).
bool cascades_from(pqxx::transaction_base& tx, const TargetConfig& child,
                   const TargetConfig& parent) {
    auto rows = tx.exec_params(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = "
        "$1::regclass AND confrelid = $2::regclass AND confdeltype = 'c')",
        quote_ident(child.table_schema) + "." + quote_ident(child.table_name),
        quote_ident(parent.table_schema) + "." + quote_ident(parent.table_name));
    return rows[0][0].as<bool>();
}

// A truncate PostgreSQL refuses for what it is (no TRUNCATE privilege, a table a foreign key
// references, a DELETE a foreign key blocks) will never succeed: it is blamed on the truncate
// event, which becomes poison, and the batch is written without it (batch.h). A lost connection,
// a deadlock or a timeout stays what it is: the batch is retried.
void run_truncate(pqxx::transaction_base& tx, const std::string& statement,
                  const std::string& context, std::size_t target) {
    try {
        tx.exec(statement);
    } catch (const pqxx::transaction_rollback&) {
        throw;
    } catch (const pqxx::sql_error& e) {
        std::string state = sqlstate_of(e);
        if (state.empty() || state == "42P01")  // no code: read as a connection; 42P01: no table
            throw;
        WriteError::Kind kind = classify_sqlstate(state);
        if (kind != WriteError::Kind::schema && kind != WriteError::Kind::bad_data)
            throw;
        throw WriteError::refused_truncate(
            context + ": truncate refused: " + one_line(e.what()) + sqlstate_suffix(state), state,
            target);
    }
}

// A target's catalog description and the statements that write its rows.
struct TargetPlan {
    TableSchema table;
    WritePlan plan;
};

}  // namespace

struct PgWriter::Impl {
    PgConnectionSettings settings;
    const PipelineConfig* pipeline = nullptr;
    // interrupt() runs on the guard's thread: it reads `socket` and sets `interrupted` under
    // `socket_lock`, which the owner's thread also takes to publish and retire the socket.
    std::mutex socket_lock;
    int socket = -1;
    std::string interrupted;  // the reason, once interrupted
    // The connection in use: the writer's own, or one lent by the pool (then `own` is empty).
    std::unique_ptr<pqxx::connection> own;
    pqxx::connection* conn = nullptr;
    std::vector<TargetPlan> targets;  // per table (aggregate.h): routes, then children
    AggregateShape shape;
    std::string context;
    std::string pipeline_name;
    std::vector<std::string> tombstone_tables;
    std::int64_t dedupe_retention_s = 0;
    std::int64_t tombstone_retention_s = 0;
};

PgConnectionSettings PgConnectionSettings::of(const Config& config, std::string application_name) {
    PgConnectionSettings settings;
    settings.url = config.postgres_url;
    settings.write_timeout_ms = config.postgres_write_timeout_ms;
    settings.connect_timeout_s = config.postgres_connect_timeout_s;
    settings.application_name = std::move(application_name);
    return settings;
}

std::string connection_string(const PgConnectionSettings& settings) {
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(
        PQconninfoParse(settings.url.c_str(), &error), PQconninfoFree);
    if (!options) {
        std::string why = error ? one_line(error) : "out of memory";
        PQfreemem(error);
        throw WriteError(WriteError::Kind::schema,
                         "postgres.url is not a libpq connection string: " + why);
    }
    // What the URL sets wins; these are added where it is silent. A dead peer (a crashed host,
    // a dropped network) is noticed within about 10 s whether the connection is idle (keepalive
    // probes after 5 s idle, every 2 s, 3 unanswered) or sending (tcp_user_timeout: data
    // unacknowledged for 10 s), instead of the kernel's defaults of hours.
    std::vector<std::pair<std::string, std::string>> defaults = {
        {"connect_timeout", std::to_string(settings.connect_timeout_s)},
        {"keepalives", "1"},
        {"keepalives_idle", "5"},
        {"keepalives_interval", "2"},
        {"keepalives_count", "3"},
        {"tcp_user_timeout", "10000"},
    };
    std::string out;
    std::set<std::string> given;
    for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
        // application_name names the worker in pg_stat_activity: ours, whatever the URL says.
        // It is a startup parameter, so it needs no session SET (PgBouncer keeps it per client).
        if (o->val == nullptr || std::string(o->keyword) == "application_name")
            continue;
        given.insert(o->keyword);
        out += std::string(o->keyword) + "=" + conninfo_value(o->val) + " ";
    }
    for (const auto& [keyword, value] : defaults)
        if (given.count(keyword) == 0)
            out += keyword + "=" + conninfo_value(value) + " ";
    return out + "application_name=" + conninfo_value(settings.application_name);
}

struct PgLink {
    pqxx::connection conn;
    explicit PgLink(const std::string& options) : conn(options) {}
};

void PgLinkDeleter::operator()(PgLink* link) const {
    delete link;
}

namespace {

// A silent reconnect inside libpqxx would hide the failure from the worker, which must see it to
// retry the batch correctly (and know a COMMIT's outcome is unknown).
void inhibit_reactivation(pqxx::connection& conn) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn.inhibit_reactivation(true);
#pragma GCC diagnostic pop
}

}  // namespace

PgLinkPtr open_link(const PgConnectionSettings& settings) {
    return translate_errors("connection pool", [&] {
        PgLinkPtr link(new PgLink(connection_string(settings)));
        inhibit_reactivation(link->conn);
        return link;
    });
}

void PgWriter::lend(PgLink& link) {
    impl_->own.reset();
    impl_->conn = &link.conn;
    std::lock_guard<std::mutex> lock(impl_->socket_lock);
    impl_->socket = link.conn.sock();
    if (!impl_->interrupted.empty())
        ::shutdown(impl_->socket, SHUT_RDWR);
}

void PgWriter::take_back() {
    std::lock_guard<std::mutex> lock(impl_->socket_lock);
    impl_->socket = -1;
    impl_->conn = nullptr;
}

PgWriter::PgWriter(PgConnectionSettings settings, const PipelineConfig& pipeline)
    : impl_(std::make_unique<Impl>()) {
    impl_->settings = std::move(settings);
    impl_->pipeline = &pipeline;
}

void PgWriter::interrupt(const std::string& reason) {
    std::lock_guard<std::mutex> lock(impl_->socket_lock);
    if (!impl_->interrupted.empty())
        return;
    impl_->interrupted = reason;
    if (impl_->socket >= 0)
        ::shutdown(impl_->socket, SHUT_RDWR);
}

// A failure of a call that interrupt() cut short is reported with the interrupt's reason, and
// never as bad data: the write was cut, the rows were not refused.
void PgWriter::throw_if_interrupted(const WriteError& error) const {
    std::string reason;
    {
        std::lock_guard<std::mutex> lock(impl_->socket_lock);
        reason = impl_->interrupted;
    }
    if (reason.empty())
        return;
    throw WriteError(error.kind() == WriteError::Kind::outcome_unknown
                         ? WriteError::Kind::outcome_unknown
                         : WriteError::Kind::connection,
                     reason + " (" + error.what() + ")");
}

void PgWriter::connect() {
    try {
        connect_now();
    } catch (const WriteError& e) {
        throw_if_interrupted(e);
        throw;
    }
}

void PgWriter::connect_now() {
    const PipelineConfig& pipeline = *impl_->pipeline;
    impl_->context = "pipeline '" + pipeline.name + "'";
    impl_->pipeline_name = pipeline.name;
    if (!pipeline.dedupe.empty())
        impl_->dedupe_retention_s = pipeline.dedupe_retention_s;
    impl_->tombstone_retention_s = pipeline.tombstone_retention_s;
    translate_errors(impl_->context, [&] {
        if (impl_->conn == nullptr) {  // not lent by the pool: the writer's own
            impl_->own = std::make_unique<pqxx::connection>(connection_string(impl_->settings));
            impl_->conn = impl_->own.get();
            {
                std::lock_guard<std::mutex> lock(impl_->socket_lock);
                impl_->socket = impl_->conn->sock();
                if (!impl_->interrupted.empty())
                    ::shutdown(impl_->socket, SHUT_RDWR);
            }
            inhibit_reactivation(*impl_->conn);
        }
        pqxx::work tx(*impl_->conn, "setup");
        tx.exec(statement_timeout(impl_->settings));
        AggregateShape& shape = impl_->shape;
        shape.tables = table_targets(pipeline);
        shape.cascades.assign(shape.tables.size(), false);
        for (std::size_t i = 0; i < shape.tables.size(); ++i)
            if (shape.tables[i].parent)
                shape.cascades[i] = cascades_from(tx, *shape.tables[i].config,
                                                  *shape.tables[*shape.tables[i].parent].config);
        for (std::size_t i = 0; i < shape.tables.size(); ++i) {
            const TargetConfig& target = *shape.tables[i].config;
            TableSchema table = read_table(tx, pipeline, target);
            if (!table.exists) {
                impl_->targets.push_back(TargetPlan{table, WritePlan{}});
                continue;
            }
            TargetPlan plan{
                table,
                shape.tables[i].parent
                    ? plan_child(pipeline, shape, i)
                    : plan_target(pipeline, resolve_target(pipeline, target, table), i, &shape)};
            if (target.delete_when && !target.version.empty())
                impl_->tombstone_tables.push_back(target.qualified_table());
            impl_->targets.push_back(std::move(plan));
        }
        tx.commit();
        return 0;
    });
}

PgWriter::~PgWriter() {
    std::lock_guard<std::mutex> lock(impl_->socket_lock);
    impl_->socket = -1;
}

const TableSchema& PgWriter::table(std::size_t target) const {
    return impl_->targets.at(target).table;
}

std::string PgWriter::describe() const {
    std::string children = describe_children(impl_->shape);
    return children.empty() ? "" : "children: " + children;
}

void PgWriter::write(const std::vector<TargetRows>& parts,
                     const std::vector<OffsetWrite>& offsets) {
    try {
        write_now(parts, offsets);
    } catch (const WriteError& e) {
        throw_if_interrupted(e);
        throw;
    }
}

void PgWriter::write_now(const std::vector<TargetRows>& parts,
                         const std::vector<OffsetWrite>& offsets) {
    std::size_t rows = 0;
    for (const auto& part : parts)
        rows += part.count;
    // A child table runs whenever its route has rows: `replace` deletes children even when the
    // new aggregates carry none.
    const auto& tables = impl_->shape.tables;
    std::vector<bool> runs(parts.size(), false);
    for (const auto& part : parts)
        runs.at(part.target) = part.count > 0 || part.truncate;
    for (const auto& part : parts)
        if (part.target < tables.size() && tables[part.target].parent)
            runs[part.target] = runs[tables[part.target].root];
    std::size_t current = 0;
    const std::string batch_context = impl_->context + " (batch of " + std::to_string(rows) + ")";
    // Names the table whose statement failed: translate_errors reads it when it reports, so a
    // refused child row is reported with its table.
    std::string context = batch_context;
    translate_errors(
        context,
        [&] {
            if (!impl_->conn->is_open())
                throw WriteError(WriteError::Kind::connection, "connection is closed");
            pqxx::work tx(*impl_->conn, "batch");
            // One round trip: the deadline, then every staging table this batch needs.
            std::string setup =
                statement_timeout(impl_->settings) + stream_idle_timeout(*impl_->pipeline);
            for (const auto& part : parts)
                if (runs[part.target])
                    for (const auto& statement : impl_->targets.at(part.target).plan.create_staging)
                        setup += "; " + statement;
            tx.exec(setup);
            for (const auto& part : parts) {
                if (!runs[part.target])
                    continue;
                current = part.target;
                const TargetPlan& target = impl_->targets.at(part.target);
                if (tables.size() > 1)
                    context =
                        batch_context + ", table " + target.table.schema + "." + target.table.name;
                const WritePlan& plan = target.plan;
                // First: the batch kept only the changes newer than the truncate (batch.cpp).
                if (part.truncate)
                    run_truncate(tx, truncate_statement(plan, part.truncate_version), context,
                                 part.target);
                if (part.count > 0) {
                // libpqxx 6.4 keeps stream_to's raw-line writer private; tablewriter exposes
                // it, and the rows are already COPY text: one call sends them all.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
                    pqxx::tablewriter copy(tx, plan.copy_target);
#pragma GCC diagnostic pop
                    copy.write_raw_line(*part.rows);
                    copy.complete();
                }
                for (const auto& statement : plan.then)
                    tx.exec(statement);
            }
            context = batch_context;
            // Last before COMMIT: a lost lease throws here and the rows roll back with it.
            store_offsets(tx, impl_->pipeline_name, impl_->pipeline->lease_s, offsets);
            tx.commit();
            return 0;
        },
        &current);
}

Coordination PgWriter::coordinate(const CoordinationRequest& request) {
    try {
        return translate_errors(impl_->context + " (stream leases)", [&] {
            if (!impl_->conn->is_open())
                throw WriteError(WriteError::Kind::connection, "connection is closed");
            pqxx::work tx(*impl_->conn, "leases");
            tx.exec(statement_timeout(impl_->settings) + stream_idle_timeout(*impl_->pipeline));
            Coordination out = coordinate_streams(tx, impl_->pipeline_name, request);
            tx.commit();
            return out;
        });
    } catch (const WriteError& e) {
        throw_if_interrupted(e);
        throw;
    }
}

void PgWriter::prune() {
    translate_errors(impl_->context + " (prune)", [&] {
        pqxx::work tx(*impl_->conn, "prune");
        tx.exec(statement_timeout(impl_->settings));
        if (impl_->dedupe_retention_s > 0)
            tx.exec("DELETE FROM rmq2pg_state.inbox WHERE pipeline = " +
                    quote_literal(impl_->pipeline_name) +
                    " AND processed_at < now() - make_interval(secs => " +
                    std::to_string(impl_->dedupe_retention_s) + ")");
        for (const auto& table : impl_->tombstone_tables)
            tx.exec("DELETE FROM rmq2pg_state.tombstones WHERE table_name = " +
                    quote_literal(table) + " AND deleted_at < now() - make_interval(secs => " +
                    std::to_string(impl_->tombstone_retention_s) + ")");
        tx.commit();
        return 0;
    });
}

bool PgWriter::evolve(std::size_t target, const std::vector<std::string>& statements) {
    const TableSchema& table = impl_->targets.at(target).table;
    const std::string qualified = quote_ident(table.schema) + "." + quote_ident(table.name);
    try {
        return translate_errors(impl_->context + " (schema_evolution on " + qualified + ")", [&] {
            if (!impl_->conn->is_open())
                throw WriteError(WriteError::Kind::connection, "connection is closed");
            return run_schema_evolution(*impl_->conn, impl_->settings.write_timeout_ms, qualified,
                                        statements);
        });
    } catch (const WriteError& e) {
        throw_if_interrupted(e);
        throw;
    }
}

TableSchema check_pipeline_against_database(const PgConnectionSettings& settings,
                                            const PipelineConfig& pipeline) {
    return translate_errors("pipeline '" + pipeline.name + "'", [&] {
        pqxx::connection conn(connection_string(settings));
        pqxx::read_transaction tx(conn, "check");
        std::vector<TableSchema> tables;
        for (const TableTarget& target : table_targets(pipeline))
            tables.push_back(read_table(tx, pipeline, *target.config));
        return tables.front();
    });
}

std::vector<StreamReading> read_streams(const PgConnectionSettings& settings,
                                        const std::string& pipeline) {
    return translate_errors("stream offsets", [&] {
        pqxx::connection conn(connection_string(settings));
        pqxx::read_transaction tx(conn, "streams");
        return read_stream_rows(tx, pipeline);
    });
}

void replay(const PgConnectionSettings& settings, const std::string& pipeline,
            const std::vector<std::string>& streams, const StreamStart& from) {
    translate_errors("replay", [&] {
        pqxx::connection conn(connection_string(settings));
        pqxx::work tx(conn, "replay");
        replay_streams(tx, pipeline, streams, from);
        tx.commit();
        return 0;
    });
}

void migrate(const PgConnectionSettings& settings) {
    translate_errors("migration", [&] {
        pqxx::connection conn(connection_string(settings));
        pqxx::work tx(conn, "migrate");
        tx.exec(kStateMigrationSql);
        tx.commit();
        return 0;
    });
}

}  // namespace rmq2pg
