// A pipeline's writer over the pooled connections; see pooled_writer.h.
#include "pooled_writer.h"

#include <algorithm>

namespace rmq2pg {

namespace {

// Rows above this in one write leave libpq's buffers at their size: such a connection is closed
// after the write instead of going back to the pool (the dedicated worker reconnects after a
// large batch for the same reason; worker_io.cpp's large_batch_bytes()).
constexpr std::size_t kLargeWriteBytes = 16 * 1024 * 1024;

}  // namespace

PooledWriter::PooledWriter(PgPool& pool, PgConnectionSettings settings,
                           const PipelineConfig& pipeline, std::string who)
    // A wait for the pool gets half the write deadline: the write guard cuts the whole call at
    // write_timeout_ms, and a busy pool must show up as such (transient, retried), not as a
    // write that hung.
    : pool_(pool),
      writer_(settings, pipeline),
      wait_limit_(std::max<std::int64_t>(1, settings.write_timeout_ms / 2)),
      who_(std::move(who)),
      ticket_(pipeline.name) {}

void PooledWriter::borrowed(const std::function<void()>& call, bool large) {
    PgPool::Lease lease = [&] {
        try {
            return pool_.acquire(FairPermits::Clock::now() + wait_limit_, ticket_, who_);
        } catch (const WriteError& e) {
            std::lock_guard<std::mutex> guard(interrupt_lock_);
            if (!interrupted_.empty())
                throw WriteError(WriteError::Kind::connection,
                                 interrupted_ + " (" + e.what() + ")");
            throw;
        }
    }();
    writer_.lend(lease.link());
    try {
        call();
    } catch (const WriteError& e) {
        writer_.take_back();
        if (e.kind() != WriteError::Kind::bad_data && e.kind() != WriteError::Kind::transient)
            lease.discard();
        throw;
    } catch (...) {
        writer_.take_back();
        lease.discard();
        throw;
    }
    writer_.take_back();
    if (large)
        lease.discard();
}

void PooledWriter::connect() {
    borrowed([&] { writer_.connect(); });
}

void PooledWriter::write(const std::vector<TargetRows>& parts,
                         const std::vector<OffsetWrite>& offsets) {
    std::size_t bytes = 0;
    for (const auto& part : parts)
        bytes += part.rows ? part.rows->size() : 0;
    borrowed([&] { writer_.write(parts, offsets); }, bytes > kLargeWriteBytes);
}

Coordination PooledWriter::coordinate(const CoordinationRequest& request) {
    Coordination out;
    borrowed([&] { out = writer_.coordinate(request); });
    return out;
}

bool PooledWriter::evolve(std::size_t target, const std::vector<std::string>& statements) {
    bool changed = false;
    borrowed([&] { changed = writer_.evolve(target, statements); });
    return changed;
}

void PooledWriter::prune() {
    borrowed([&] { writer_.prune(); });
}

void PooledWriter::interrupt(const std::string& reason) {
    {
        std::lock_guard<std::mutex> guard(interrupt_lock_);
        if (interrupted_.empty())
            interrupted_ = reason;
    }
    pool_.abort(ticket_);
    writer_.interrupt(reason);
}

}  // namespace rmq2pg
