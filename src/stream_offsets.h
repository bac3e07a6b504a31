// The bookkeeping of streams that is pure code: what a worker holds (its claims), the offsets a
// batch's transaction stores, and how a pipeline's streams are shared out among its live
// workers. The SQL is in pg_stream_state.cpp; the worker steps in worker_stream.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rmq2pg {

class Batch;

// The offset a transaction stores for one stream, fenced by the epoch of the writer's lease:
// PostgreSQL updates it only while the epoch is still the one claimed.
struct OffsetWrite {
    std::string stream;
    std::int64_t next_offset = 0;
    std::int64_t epoch = 0;
};

// A stream a worker holds: the epoch of its lease and where reading resumes.
struct StreamClaim {
    std::string stream;
    std::int64_t epoch = 0;
    std::optional<std::int64_t> next_offset;  // null: never committed (or replayed by time)
    std::optional<std::string> start_at;      // a replay's --from when not an offset
};

// One round of a worker's membership: heartbeat, renew what it holds, release what belongs to
// another, claim what is its share and free.
struct CoordinationRequest {
    std::string member;                // unique among all instances: host, pid, worker
    std::vector<std::string> streams;  // the pipeline's
    int lease_s = 10;
    std::vector<StreamClaim> held;  // what the worker believes it holds
    bool leaving = false;           // release everything and leave the membership
};

struct Coordination {
    std::vector<StreamClaim> held;  // what it holds now (kept claims keep their epoch)
    std::size_t members = 0;        // live workers of the pipeline, itself included
    std::size_t changes = 0;        // claims taken, lost or released in this round
};

// What rmq2pg_state holds for one stream of a pipeline (the status page, /metrics, /readyz).
struct StreamReading {
    std::string stream;
    std::optional<std::int64_t> next_offset;
    std::string owner;  // "" = none
    bool leased = false;
    std::int64_t lease_changes = 0;
};

// Which live member (index into `members`, sorted) should own each of `streams`: a stream's
// rank in sorted order, modulo the number of members, so each gets its share ±1.
std::vector<std::size_t> preferred_owners(const std::vector<std::string>& streams,
                                          const std::vector<std::string>& members);

// The offsets the next transaction stores for the streams of `batch`, once `committing` (indices
// into the batch, may be null) commits: per stream, the offset of its first message that is
// neither committed nor set aside (dead-lettered, skipped), else one past its last. A message not
// yet settled is never passed, so a crash re-reads it; the worker writes a stream's messages in
// offset order, so what precedes it is exactly what committed. Epochs come from `held`; a stream
// missing there gets epoch -1, which fences the write.
std::vector<OffsetWrite> offsets_to_store(const Batch& batch,
                                          const std::vector<std::size_t>* committing,
                                          const std::vector<StreamClaim>& held);

}  // namespace rmq2pg
