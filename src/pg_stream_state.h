// The SQL of streams over rmq2pg_state.stream_offsets and stream_members: the fenced offset
// UPDATE of a batch's transaction, the membership and lease round, and replay. Only pg_* files
// include it (it brings libpqxx).
#pragma once

#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "stream_offsets.h"
#include "stream_start.h"

namespace rmq2pg {

// Inside a batch's transaction, before COMMIT: stores each offset where its epoch still holds.
// Throws WriteError(fenced) when one does not (the caller's transaction then rolls back).
void store_offsets(pqxx::transaction_base& tx, const std::string& pipeline, int lease_s,
                   const std::vector<OffsetWrite>& offsets);

// One membership round in `tx` (committed by the caller).
Coordination coordinate_streams(pqxx::transaction_base& tx, const std::string& pipeline,
                                const CoordinationRequest& request);

std::vector<StreamReading> read_stream_rows(pqxx::transaction_base& tx,
                                            const std::string& pipeline);

// `rmq2pg replay`: moves `streams` of `pipeline` to `from` and bumps their epochs, so the
// workers reading them now fail their next commit or renewal and read again from there.
void replay_streams(pqxx::transaction_base& tx, const std::string& pipeline,
                    const std::vector<std::string>& streams, const StreamStart& from);

}  // namespace rmq2pg
