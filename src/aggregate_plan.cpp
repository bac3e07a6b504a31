// The SQL of aggregates; see aggregate_plan.h and the design in aggregate.h. Aliases: `d` is
// the table a DELETE removes rows from, a0, a1, a2 the rows of each level of the chain that
// selects them (the depth of their table), `s` a staging table, `l` the latest change per key.
#include "aggregate_plan.h"

namespace rmq2pg {

namespace {

std::string qualified(const TargetConfig& t) {
    return quote_ident(t.table_schema) + "." + quote_ident(t.table_name);
}

std::string staging_of(std::size_t index) {
    return "rmq2pg_batch_" + std::to_string(index);
}

std::vector<std::size_t> children_of(const AggregateShape& shape, std::size_t table) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < shape.tables.size(); ++i)
        if (shape.tables[i].parent == table)
            out.push_back(i);
    return out;
}

// Deletes the rows of child `child` hanging on the parent rows `parent_alias` selected by
// using_clause/where, after their own children. `own` false: a cascade removes them.
void delete_child(const AggregateShape& shape, std::size_t child, const std::string& parent_alias,
                  const std::string& using_clause, const std::string& where, bool own,
                  std::vector<std::string>& out) {
    const TargetConfig& c = *shape.tables[child].config;
    std::string alias = "a" + std::to_string(shape.tables[child].depth);
    // Their own children first: they hang on the rows about to go.
    for (std::size_t grandchild : children_of(shape, child))
        delete_child(shape, grandchild, alias, using_clause + ", " + qualified(c) + " " + alias,
                     where + " AND " + link_condition(c, alias, parent_alias),
                     !shape.cascades[grandchild], out);
    if (own)
        out.push_back("DELETE FROM " + qualified(c) + " d USING " + using_clause + " WHERE " +
                      where + " AND " + link_condition(c, "d", parent_alias));
}

}  // namespace

std::string applied_table(std::size_t root) {
    return "rmq2pg_applied_" + std::to_string(root);
}

std::string link_condition(const TargetConfig& child, const std::string& child_alias,
                           const std::string& parent_alias) {
    std::string out;
    for (const auto& m : child.columns)
        if (m.source.kind == ColumnSource::Kind::parent_column)
            out += (out.empty() ? "" : " AND ") + child_alias + "." + quote_ident(m.column) +
                   " = " + parent_alias + "." + quote_ident(m.source.argument);
    return out.empty() ? "false" : out;
}

std::vector<std::string> delete_descendants(const AggregateShape& shape, std::size_t table,
                                            const std::string& alias,
                                            const std::string& using_clause,
                                            const std::string& where) {
    std::vector<std::string> out;
    for (std::size_t child : children_of(shape, table))
        delete_child(shape, child, alias, using_clause, where, !shape.cascades[child], out);
    return out;
}

WritePlan plan_child(const PipelineConfig& pipeline, const AggregateShape& shape,
                     std::size_t index) {
    (void)pipeline;
    const TableTarget& t = shape.tables.at(index);
    const TargetConfig& child = *t.config;
    WritePlan plan;
    std::vector<std::string> columns;
    for (const auto& c : child.columns)
        columns.push_back(c.column);
    const std::string table = qualified(child);
    plan.staging = staging_of(index);
    const std::string& stage = plan.staging;
    std::vector<std::string> copied = columns;
    copied.push_back(kStagingMessage);
    plan.copy_target = stage + " (" + column_list(copied) + ")";
    plan.create_staging.push_back("CREATE TEMP TABLE " + stage + " ON COMMIT DROP AS SELECT " +
                                  column_list(columns) + ", NULL::integer AS " + kStagingMessage +
                                  " FROM " + table + " WITH NO DATA");
    const std::string applied = "(SELECT msg FROM " + applied_table(t.root) + ")";
    const std::string parent_stage = staging_of(*t.parent);
    if (child.replace) {
        // The children of every parent row this batch applied, the old ones (and theirs) out
        // first: an updated aggregate keeps exactly the lines it carries, none when its array
        // is empty or missing.
        std::string alias = "a" + std::to_string(shape.tables[*t.parent].depth);
        delete_child(shape, index, alias, parent_stage + " " + alias,
                     alias + "." + kStagingMessage + " IN " + applied, true, plan.then);
    }
    const std::string mine = " WHERE " + std::string(kStagingMessage) + " IN " + applied;
    if (child.mode == WriteMode::insert) {
        plan.then.push_back("INSERT INTO " + table + " (" + column_list(columns) + ") SELECT " +
                            column_list(columns) + " FROM " + stage + mine + " ORDER BY ctid");
        return plan;
    }
    std::string key = column_list(child.key);
    std::string latest = "(SELECT DISTINCT ON (" + key + ") * FROM " + stage + mine + " ORDER BY " +
                         key + ", ctid" + (child.mode == WriteMode::upsert ? " DESC" : "") + ")";
    plan.then.push_back("INSERT INTO " + table + " AS t (" + column_list(columns) + ") SELECT " +
                        prefixed("l", columns) + " FROM " + latest + " l " +
                        on_conflict(columns, child.key, child.mode));
    return plan;
}

std::string describe_children(const AggregateShape& shape) {
    std::string out;
    for (std::size_t i = 0; i < shape.tables.size(); ++i) {
        const TableTarget& t = shape.tables[i];
        if (!t.parent)
            continue;
        out += (out.empty() ? "" : ", ") + t.config->qualified_table() + " child of " +
               shape.tables[*t.parent].config->qualified_table() +
               (shape.cascades[i] ? " (its ON DELETE CASCADE deletes it with the parent)"
                                  : " (rmq2pg deletes it before the parent)");
    }
    return out;
}

}  // namespace rmq2pg
