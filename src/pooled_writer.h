// A pipeline's BatchWriter over the daemon's PostgreSQL pool (pg_pool.h): the pipeline's catalog
// reading and write plans stay with it (a PgWriter), the connection is borrowed for each call
// and returned after its COMMIT or rollback. Owned by one worker thread; interrupt() comes from
// its write guard.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "batch_writer.h"
#include "config.h"
#include "pg_pool.h"
#include "pg_writer.h"

namespace rmq2pg {

class PooledWriter : public BatchWriter {
  public:
    // `settings`: the deadlines of each call (application_name is the pool's); `who` names the
    // worker in errors.
    PooledWriter(PgPool& pool, PgConnectionSettings settings, const PipelineConfig& pipeline,
                 std::string who);

    void connect() override;
    const TableSchema& table(std::size_t target) const override { return writer_.table(target); }
    std::string describe() const override { return writer_.describe(); }
    void write(const std::vector<TargetRows>& parts,
               const std::vector<OffsetWrite>& offsets) override;
    Coordination coordinate(const CoordinationRequest& request) override;
    void prune() override;
    // schema_evolution: basic, on a borrowed connection like a write.
    bool evolve(std::size_t target, const std::vector<std::string>& statements) override;
    // Cuts a wait for the pool as well as a call under way on a borrowed connection.
    void interrupt(const std::string& reason) override;

  private:
    // Runs `call` on a borrowed connection; a connection whose call failed other than by
    // refusing data (bad_data) or a retryable conflict (transient) is closed, not returned.
    // `large`: the call grew libpq's buffers (a huge batch): the connection is closed after it
    // rather than kept at that size in the pool.
    void borrowed(const std::function<void()>& call, bool large = false);

    PgPool& pool_;
    PgWriter writer_;
    std::chrono::milliseconds wait_limit_;
    std::string who_;
    FairPermits::Ticket ticket_;
    std::mutex interrupt_lock_;  // guards interrupted_ (the guard's thread sets it)
    std::string interrupted_;
};

}  // namespace rmq2pg
