// Pure bookkeeping of streams; see stream_offsets.h.
#include "stream_offsets.h"

#include <algorithm>
#include <map>

#include "batch.h"

namespace rmq2pg {

std::vector<std::size_t> preferred_owners(const std::vector<std::string>& streams,
                                          const std::vector<std::string>& members) {
    std::vector<std::size_t> owners(streams.size(), 0);
    if (members.empty())
        return owners;
    // Ranks by name, so every instance computes the same sharing whatever its config's order.
    std::vector<std::size_t> order(streams.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return streams[a] < streams[b]; });
    for (std::size_t rank = 0; rank < order.size(); ++rank)
        owners[order[rank]] = rank % members.size();
    return owners;
}

std::vector<OffsetWrite> offsets_to_store(const Batch& batch,
                                          const std::vector<std::size_t>* committing,
                                          const std::vector<StreamClaim>& held) {
    const auto& messages = batch.messages();
    std::vector<bool> in_commit(messages.size(), false);
    if (committing)
        for (std::size_t i : *committing)
            in_commit[i] = true;
    struct Next {
        std::int64_t offset = 0;
        bool blocked = false;  // a message not settled stops the offset there
    };
    std::map<std::string_view, Next> next;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const Delivery& d = messages[i].delivery;
        if (!d.stream_offset)
            continue;
        Next& n = next[d.stream];
        if (n.blocked)
            continue;
        Batch::Status status = messages[i].status;
        bool settled = in_commit[i] || status == Batch::Status::committed ||
                       status == Batch::Status::dead_lettered || status == Batch::Status::rejected;
        if (settled) {
            n.offset = *d.stream_offset + 1;
        } else {
            n.offset = *d.stream_offset;
            n.blocked = true;
        }
    }
    std::vector<OffsetWrite> out;
    for (const auto& [stream, n] : next) {
        auto claim = std::find_if(held.begin(), held.end(),
                                  [&](const StreamClaim& c) { return c.stream == stream; });
        // A stream not held gets an epoch no lease has: its UPDATE fails and rolls back the rows.
        out.push_back(
            OffsetWrite{std::string(stream), n.offset, claim == held.end() ? -1 : claim->epoch});
    }
    // By name: two transactions lock the rows of rmq2pg_state in one order, so never deadlock.
    return out;
}

}  // namespace rmq2pg
