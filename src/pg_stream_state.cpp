// The SQL of streams; see pg_stream_state.h. Design: one row per (pipeline, stream) holds the
// next offset, the owner and the lease. Every change of owner bumps `epoch`; the offset UPDATE of
// a batch names the epoch its worker claimed, so a worker whose lease was taken (it froze, or
// lost its network, past lease_s) updates 0 rows and throws: its COMMIT is never sent. Lease
// expiry is judged by PostgreSQL's now() alone. Rows are locked in stream order (FOR UPDATE,
// and batches store their offsets by name) so two workers never deadlock. Statements only: no
// session state, no advisory lock, so PgBouncer's transaction pooling is fine.
#include "pg_stream_state.h"

#include <algorithm>

#include "write_error.h"

namespace rmq2pg {

namespace {

std::string lease_interval(int lease_s) {
    return "make_interval(secs => " + std::to_string(lease_s) + ")";
}

StreamClaim claim_of(const pqxx::row& row, const std::string& stream) {
    StreamClaim claim;
    claim.stream = stream;
    claim.epoch = row["epoch"].as<std::int64_t>();
    if (!row["next_offset"].is_null())
        claim.next_offset = row["next_offset"].as<std::int64_t>();
    if (!row["start_at"].is_null())
        claim.start_at = row["start_at"].as<std::string>();
    return claim;
}

}  // namespace

void store_offsets(pqxx::transaction_base& tx, const std::string& pipeline, int lease_s,
                   const std::vector<OffsetWrite>& offsets) {
    for (const auto& o : offsets) {
        auto r = tx.exec_params(
            "UPDATE rmq2pg_state.stream_offsets SET next_offset = $3, start_at = NULL, "
            "committed_at = now(), lease_until = now() + " +
                lease_interval(lease_s) + " WHERE pipeline = $1 AND stream = $2 AND epoch = $4",
            pipeline, o.stream, o.next_offset, o.epoch);
        if (r.affected_rows() == 0)
            throw WriteError(WriteError::Kind::fenced,
                             "stream '" + o.stream + "': the lease of epoch " +
                                 std::to_string(o.epoch) +
                                 " was taken (another worker, or a replay); nothing committed");
    }
}

Coordination coordinate_streams(pqxx::transaction_base& tx, const std::string& pipeline,
                                const CoordinationRequest& request) {
    Coordination out;
    const std::string lease = lease_interval(request.lease_s);
    if (request.leaving) {
        tx.exec_params(
            "DELETE FROM rmq2pg_state.stream_members WHERE pipeline = $1 AND member = $2", pipeline,
            request.member);
    } else {
        tx.exec_params(
            "INSERT INTO rmq2pg_state.stream_members (pipeline, member, alive_until) "
            "VALUES ($1, $2, now() + " +
                lease +
                ") ON CONFLICT (pipeline, member) DO UPDATE SET alive_until = "
                "excluded.alive_until",
            pipeline, request.member);
        // Members gone for a day are forgotten (their rows only matter while they may live).
        tx.exec_params(
            "DELETE FROM rmq2pg_state.stream_members WHERE pipeline = $1 AND "
            "alive_until < now() - interval '1 day'",
            pipeline);
    }
    std::vector<std::string> members;
    for (const auto& row : tx.exec_params("SELECT member FROM rmq2pg_state.stream_members WHERE "
                                          "pipeline = $1 AND alive_until >= now() ORDER BY member",
                                          pipeline))
        members.push_back(row[0].as<std::string>());
    out.members = members.size();
    auto me = std::find(members.begin(), members.end(), request.member);
    auto owners = preferred_owners(request.streams, members);

    std::vector<std::size_t> order(request.streams.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return request.streams[a] < request.streams[b];
    });
    for (std::size_t i : order) {
        const std::string& stream = request.streams[i];
        tx.exec_params(
            "INSERT INTO rmq2pg_state.stream_offsets (pipeline, stream) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            pipeline, stream);
        auto rows = tx.exec_params(
            "SELECT epoch, coalesce(owner, '') AS owner, coalesce(lease_until >= now(), false) "
            "AS leased, next_offset, start_at FROM rmq2pg_state.stream_offsets "
            "WHERE pipeline = $1 AND stream = $2 FOR UPDATE",
            pipeline, stream);
        const pqxx::row row = rows[0];
        std::int64_t epoch = row["epoch"].as<std::int64_t>();
        std::string owner = row["owner"].as<std::string>();
        bool leased = row["leased"].as<bool>();
        auto held = std::find_if(request.held.begin(), request.held.end(),
                                 [&](const StreamClaim& c) { return c.stream == stream; });
        bool mine =
            me != members.end() && static_cast<std::size_t>(me - members.begin()) == owners[i];
        if (held != request.held.end()) {
            if (epoch != held->epoch || owner != request.member) {
                out.changes++;  // taken by another worker, or moved by a replay
                continue;
            }
            if (mine && !request.leaving) {
                tx.exec_params("UPDATE rmq2pg_state.stream_offsets SET lease_until = now() + " +
                                   lease + " WHERE pipeline = $1 AND stream = $2",
                               pipeline, stream);
                out.held.push_back(claim_of(row, stream));  // with the offset stored now
            } else {
                // Its share moved to another member: let it go now rather than at expiry.
                tx.exec_params(
                    "UPDATE rmq2pg_state.stream_offsets SET owner = NULL, lease_until = NULL "
                    "WHERE pipeline = $1 AND stream = $2",
                    pipeline, stream);
                out.changes++;
            }
            continue;
        }
        if (!mine || request.leaving || (leased && !owner.empty() && owner != request.member))
            continue;
        auto claimed = tx.exec_params(
            "UPDATE rmq2pg_state.stream_offsets SET owner = $3, epoch = epoch + 1, "
            "lease_until = now() + " +
                lease +
                ", lease_changes = lease_changes + 1 WHERE pipeline = $1 AND stream = $2 "
                "RETURNING epoch, next_offset, start_at",
            pipeline, stream, request.member);
        out.held.push_back(claim_of(claimed[0], stream));
        out.changes++;
    }
    return out;
}

std::vector<StreamReading> read_stream_rows(pqxx::transaction_base& tx,
                                            const std::string& pipeline) {
    std::vector<StreamReading> out;
    for (const auto& row :
         tx.exec_params("SELECT stream, next_offset, coalesce(owner, ''), "
                        "coalesce(lease_until >= now(), false), lease_changes FROM "
                        "rmq2pg_state.stream_offsets WHERE pipeline = $1 ORDER BY stream",
                        pipeline)) {
        StreamReading r;
        r.stream = row[0].as<std::string>();
        if (!row[1].is_null())
            r.next_offset = row[1].as<std::int64_t>();
        r.owner = row[2].as<std::string>();
        r.leased = row[3].as<bool>();
        r.lease_changes = row[4].as<std::int64_t>();
        out.push_back(std::move(r));
    }
    return out;
}

void replay_streams(pqxx::transaction_base& tx, const std::string& pipeline,
                    const std::vector<std::string>& streams, const StreamStart& from) {
    for (const auto& stream : streams) {
        tx.exec_params(
            "INSERT INTO rmq2pg_state.stream_offsets (pipeline, stream) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            pipeline, stream);
        if (from.kind == StreamStart::Kind::offset)
            tx.exec_params(
                "UPDATE rmq2pg_state.stream_offsets SET next_offset = $3, start_at = NULL, "
                "epoch = epoch + 1, owner = NULL, lease_until = NULL, lease_changes = "
                "lease_changes + 1 WHERE pipeline = $1 AND stream = $2",
                pipeline, stream, from.value);
        else
            // A time is resolved by the broker when the stream is read again; an interval is
            // fixed now, so a replay means the same point however late it is picked up.
            tx.exec_params(
                "UPDATE rmq2pg_state.stream_offsets SET next_offset = NULL, start_at = $3, "
                "epoch = epoch + 1, owner = NULL, lease_until = NULL, lease_changes = "
                "lease_changes + 1 WHERE pipeline = $1 AND stream = $2",
                pipeline, stream, from.text);
    }
}

}  // namespace rmq2pg
