// The numbering of a pipeline's tables; see aggregate.h.
#include "aggregate.h"

namespace rmq2pg {

namespace {

void add_children(std::vector<TableTarget>& out, std::size_t parent, std::size_t root, int depth) {
    for (const TargetConfig& child : out[parent].config->children) {
        TableTarget t;
        t.config = &child;
        t.parent = parent;
        t.root = root;
        t.depth = depth;
        out.push_back(t);
        add_children(out, out.size() - 1, root, depth + 1);
    }
}

}  // namespace

std::vector<TableTarget> table_targets(const PipelineConfig& pipeline) {
    std::vector<TableTarget> out;
    auto routes = pipeline.targets();
    for (std::size_t r = 0; r < routes.size(); ++r) {
        TableTarget t;
        t.config = routes[r];
        t.root = r;
        out.push_back(t);
    }
    for (std::size_t r = 0; r < routes.size(); ++r)
        add_children(out, r, r, 1);
    return out;
}

std::vector<std::size_t> descendants(const std::vector<TableTarget>& tables, std::size_t table) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < tables.size(); ++i) {
        // Walk up from i: is `table` an ancestor?
        for (auto p = tables[i].parent; p; p = tables[*p].parent)
            if (*p == table) {
                out.push_back(i);
                break;
            }
    }
    return out;
}

}  // namespace rmq2pg
