// libpqxx behind PgWriter. Design: a batch is one transaction. insert mode COPYs the rows
// straight into the table; ignore/upsert COPY into a per-connection temporary staging table (same
// column types, no constraints) and then run one INSERT ... SELECT ... ON CONFLICT, with
// DISTINCT ON the key so several changes to one key in a batch never hit the same row twice
// (the last delivered wins for upsert, the first for ignore). COMMIT is the last statement;
// the caller acks only after write() returned. libpqxx exceptions are mapped to WriteError
// kinds by SQLSTATE class, so the worker knows whether to reconnect, retry or isolate a row.
#include "pg_writer.h"

#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <algorithm>
#include <regex>
#include <set>

namespace rmq2pg {

const char* to_string(WriteError::Kind kind) {
    switch (kind) {
        case WriteError::Kind::connection:
            return "connection lost";
        case WriteError::Kind::transient:
            return "transient";
        case WriteError::Kind::outcome_unknown:
            return "commit outcome unknown";
        case WriteError::Kind::bad_data:
            return "bad data";
        case WriteError::Kind::schema:
            return "schema";
    }
    return "?";
}

namespace {

constexpr const char* kStagingTable = "rmq2pg_staging";
constexpr const char* kStagingSeq = "rmq2pg_seq";

std::string quote_ident(const std::string& name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::string column_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + quote_ident(n);
    return out;
}

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

// SQLSTATE class → next action. https://www.postgresql.org/docs/15/errcodes-appendix.html
WriteError::Kind classify_sqlstate(const std::string& state) {
    std::string cls = state.substr(0, 2);
    if (cls == "08" || cls == "57")
        return WriteError::Kind::connection;  // connection, shutdown
    if (cls == "40" || cls == "53" || cls == "55" || cls == "58" || cls == "XX")
        return WriteError::Kind::transient;  // rollback, resources, lock, system, internal
    if (cls == "22" || cls == "23")
        return WriteError::Kind::bad_data;  // data, constraint
    if (state == "54000")
        return WriteError::Kind::bad_data;  // e.g. a value too large for a row
    return WriteError::Kind::schema;        // 42 (missing table/column), 28, 3F, 0A...
}

std::optional<std::size_t> blamed_copy_line(const std::string& message) {
    // PostgreSQL's CONTEXT line for COPY errors: "COPY orders, line 37, column amount: ..."
    static const std::regex copy_line(R"(COPY [^\n]*?, line ([0-9]+))");
    std::smatch m;
    if (!std::regex_search(message, m, copy_line))
        return std::nullopt;
    std::size_t line = std::stoul(m[1].str());
    if (line == 0)
        return std::nullopt;
    return line - 1;
}

std::string one_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    for (auto& c : text)
        if (c == '\n')
            c = ' ';
    return text;
}

// Runs `body`, translating libpqxx exceptions into WriteError.
template <typename F>
auto translate_errors(const std::string& context, F&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const WriteError&) {
        throw;
    } catch (const pqxx::in_doubt_error& e) {
        throw WriteError(WriteError::Kind::outcome_unknown, context + ": " + one_line(e.what()));
    } catch (const pqxx::broken_connection& e) {
        throw WriteError(WriteError::Kind::connection, context + ": " + one_line(e.what()));
    } catch (const pqxx::sql_error& e) {
        std::string text = one_line(e.what());
        if (!e.sqlstate().empty())
            text += " (SQLSTATE " + e.sqlstate() + ")";
        WriteError::Kind kind =
            e.sqlstate().empty() ? WriteError::Kind::connection : classify_sqlstate(e.sqlstate());
        throw WriteError(kind, context + ": " + text, e.sqlstate(), blamed_copy_line(e.what()));
    } catch (const pqxx::failure& e) {
        // libpqxx reports a dropped connection during COPY as a plain failure.
        throw WriteError(WriteError::Kind::connection, context + ": " + one_line(e.what()));
    }
}

TableSchema read_table(pqxx::connection& conn, const PipelineConfig& pipeline) {
    TableSchema table;
    table.schema = pipeline.table_schema;
    table.name = pipeline.table_name;
    std::string qualified = quote_ident(table.schema) + "." + quote_ident(table.name);
    pqxx::read_transaction tx(conn, "catalog");
    auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", qualified);
    if (!exists[0][0].as<bool>())
        throw WriteError(WriteError::Kind::schema, "table " + qualified + " does not exist");
    auto columns = tx.exec_params(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory, "
        "a.attnotnull FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        qualified);
    for (const auto& row : columns) {
        ColumnInfo column;
        column.name = row[0].as<std::string>();
        column.type_name = row[1].as<std::string>();
        column.category = category_of(row[2].as<std::string>(), row[3].as<std::string>());
        column.not_null = row[4].as<bool>();
        table.columns.push_back(column);
    }
    for (const auto& mapping : pipeline.columns) {
        if (table.find(mapping.column) == nullptr)
            throw WriteError(WriteError::Kind::schema, "pipeline '" + pipeline.name +
                                                           "': column '" + mapping.column +
                                                           "' does not exist in " + qualified);
    }
    if (pipeline.mode != WriteMode::insert) {
        // ON CONFLICT (key) needs a unique index on exactly those columns.
        auto indexes = tx.exec_params(
            "SELECT array_to_string(array_agg(a.attname::text ORDER BY a.attname), ',') "
            "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid",
            qualified);
        std::vector<std::string> key = pipeline.key;
        std::sort(key.begin(), key.end());
        std::string wanted;
        for (const auto& k : key)
            wanted += (wanted.empty() ? "" : ",") + k;
        bool found = false;
        for (const auto& row : indexes)
            found = found || row[0].as<std::string>() == wanted;
        if (!found)
            throw WriteError(WriteError::Kind::schema,
                             "pipeline '" + pipeline.name + "': mode " + to_string(pipeline.mode) +
                                 " needs a unique index or constraint on (" + wanted + ") of " +
                                 qualified + ", and there is none");
    }
    return table;
}

}  // namespace

struct PgWriter::Impl {
    std::unique_ptr<pqxx::connection> conn;
    TableSchema table;
    std::string copy_target;  // COPY ... FROM STDIN target with its column list
    std::string merge_sql;    // empty in insert mode
    std::string context;
};

PgWriter::PgWriter(const std::string& url, const PipelineConfig& pipeline,
                   const std::string& application_name)
    : impl_(std::make_unique<Impl>()) {
    impl_->context = "pipeline '" + pipeline.name + "' table " + pipeline.qualified_table();
    translate_errors(impl_->context, [&] {
        impl_->conn = std::make_unique<pqxx::connection>(url);
        // A silent reconnect inside libpqxx would lose the temporary staging table and hide
        // the failure from the worker, which must see it to retry the batch correctly.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        impl_->conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
        impl_->conn->set_variable("application_name", impl_->conn->quote(application_name));
        impl_->table = read_table(*impl_->conn, pipeline);
        return 0;
    });
    std::vector<std::string> columns;
    for (const auto& c : pipeline.columns)
        columns.push_back(c.column);
    std::string target =
        quote_ident(pipeline.table_schema) + "." + quote_ident(pipeline.table_name);
    if (pipeline.mode == WriteMode::insert) {
        impl_->copy_target = target + " (" + column_list(columns) + ")";
        return;
    }
    impl_->copy_target = std::string(kStagingTable) + " (" + column_list(columns) + ")";
    std::vector<std::string> non_key;
    for (const auto& c : columns)
        if (std::find(pipeline.key.begin(), pipeline.key.end(), c) == pipeline.key.end())
            non_key.push_back(c);
    std::string order = pipeline.mode == WriteMode::upsert ? " DESC" : "";
    std::string sql = "INSERT INTO " + target + " (" + column_list(columns) +
                      ") SELECT DISTINCT ON (" + column_list(pipeline.key) + ") " +
                      column_list(columns) + " FROM " + kStagingTable + " ORDER BY " +
                      column_list(pipeline.key) + ", " + kStagingSeq + order + " ON CONFLICT (" +
                      column_list(pipeline.key) + ") ";
    if (pipeline.mode == WriteMode::ignore || non_key.empty()) {
        sql += "DO NOTHING";
    } else {
        sql += "DO UPDATE SET ";
        for (std::size_t i = 0; i < non_key.size(); ++i)
            sql += (i ? ", " : "") + quote_ident(non_key[i]) + " = EXCLUDED." +
                   quote_ident(non_key[i]);
    }
    impl_->merge_sql = sql;
    translate_errors(impl_->context, [&] {
        // Same column types as the target, none of its constraints: conversion errors surface
        // in COPY with a line number; constraint errors in the INSERT ... SELECT.
        pqxx::work tx(*impl_->conn, "staging");
        tx.exec("CREATE TEMP TABLE IF NOT EXISTS " + std::string(kStagingTable) +
                " ON COMMIT DELETE ROWS AS SELECT " + column_list(columns) + " FROM " + target +
                " WITH NO DATA");
        tx.exec("ALTER TABLE " + std::string(kStagingTable) + " ADD COLUMN IF NOT EXISTS " +
                kStagingSeq + " bigserial");
        tx.commit();
        return 0;
    });
}

PgWriter::~PgWriter() = default;

const TableSchema& PgWriter::table() const {
    return impl_->table;
}

void PgWriter::write(const std::string& copy_rows, std::size_t rows) {
    translate_errors(impl_->context + " (batch of " + std::to_string(rows) + ")", [&] {
        if (!impl_->conn->is_open())
            throw WriteError(WriteError::Kind::connection, "connection is closed");
        pqxx::work tx(*impl_->conn, "batch");
        {
            // libpqxx 6.4 keeps stream_to's raw-line writer private; tablewriter exposes it, and
            // the batch is already COPY text: one call sends it all.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            pqxx::tablewriter copy(tx, impl_->copy_target);
#pragma GCC diagnostic pop
            copy.write_raw_line(copy_rows);
            copy.complete();
        }
        if (!impl_->merge_sql.empty())
            tx.exec(impl_->merge_sql);
        tx.commit();
        return 0;
    });
}

TableSchema check_pipeline_against_database(const std::string& url,
                                            const PipelineConfig& pipeline) {
    return translate_errors("pipeline '" + pipeline.name + "'", [&] {
        pqxx::connection conn(url);
        return read_table(conn, pipeline);
    });
}

}  // namespace rmq2pg
