// Deadlines and the connection cap of the HTTP endpoints; see http_connection_guard.h.
#include "http_connection_guard.h"

namespace rmq2pg {

std::vector<ConnectionGuard::Cut> ConnectionGuard::opened(Id id, Clock::time_point now) {
    std::vector<Cut> cuts;
    closed(id);  // a socket number is reused only after closed(); this keeps the count exact anyway
    connections_.emplace(id, Connection{Phase::awaiting_first_request, now});
    ++open_;
    // Linear scans: max_open is a few hundred, and this runs once per accepted connection.
    while (open_ > limits_.max_open) {
        Connection* oldest = nullptr;
        Id oldest_id = 0;
        for (auto& [other_id, c] : connections_) {
            if (other_id == id || c.cut || c.phase == Phase::in_request)
                continue;
            if (!oldest || c.since < oldest->since) {
                oldest = &c;
                oldest_id = other_id;
            }
        }
        if (!oldest)
            break;  // every other connection is inside a request: those end by their deadline
        oldest->cut = true;
        --open_;
        cuts.push_back({oldest_id, Why::evicted});
    }
    return cuts;
}

void ConnectionGuard::request_started(Id id, Clock::time_point now) {
    auto it = connections_.find(id);
    if (it != connections_.end() && !it->second.cut)
        it->second = Connection{Phase::in_request, now};
}

void ConnectionGuard::request_finished(Id id, Clock::time_point now) {
    auto it = connections_.find(id);
    if (it != connections_.end() && !it->second.cut)
        it->second = Connection{Phase::awaiting_next_request, now};
}

void ConnectionGuard::closed(Id id) {
    auto it = connections_.find(id);
    if (it == connections_.end())
        return;
    if (!it->second.cut)
        --open_;
    connections_.erase(it);
}

std::vector<ConnectionGuard::Cut> ConnectionGuard::expired(Clock::time_point now) {
    std::vector<Cut> cuts;
    for (auto& [id, c] : connections_) {
        if (c.cut || now - c.since < limits_.phase)
            continue;
        c.cut = true;
        --open_;
        cuts.push_back({id, why_expired(c.phase)});
    }
    return cuts;
}

ConnectionGuard::Why ConnectionGuard::why_expired(Phase phase) {
    switch (phase) {
        case Phase::awaiting_first_request:
            return Why::request_deadline;
        case Phase::awaiting_next_request:
            return Why::idle_deadline;
        case Phase::in_request:
            break;
    }
    return Why::response_deadline;
}

}  // namespace rmq2pg
