// One batch of deliveries on its way to one transaction: each message with its status (pending,
// committed, poison) and reason, its row per target once mapped, and the split of a part that
// PostgreSQL refused (on the line it blamed, else by halves). Pure: no I/O; the worker hands it
// from step to step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aggregate_mapper.h"
#include "batch_writer.h"
#include "config.h"
#include "delivery.h"
#include "row_mapper.h"

namespace rmq2pg {

class Batch {
  public:
    // poison: set aside, still to settle (dead letter or reject); rejected: refused at the
    // broker already, so no ack may name its tag any more; dead_lettered: a stream's poison,
    // published to <stream>.dead already (a stream's offset may move past it).
    enum class Status { pending, committed, poison, rejected, dead_lettered };
    // A message's rows in one table: `count` rows at [offset, offset + length) of its buffer.
    struct Span {
        std::size_t table = 0;  // index into table_targets() (aggregate.h)
        std::size_t offset = 0, length = 0, count = 0;
    };
    struct Message {
        Delivery delivery;
        Status status = Status::pending;
        std::string reason;      // why it is poison; what was skipped (tombstone, truncate)
        std::size_t target = 0;  // index into PipelineConfig::targets()
        // Its spans: spans_[first_span, first_span + span_count), one per table it has rows in
        // (its route's table first, then its children's).
        std::size_t first_span = 0, span_count = 0;
        bool mapped = false;   // has its rows in the tables' rows
        bool skipped = false;  // settled without a row (RowMapper::skipped), counted apart
        // A truncate to apply (on_truncate: truncate): pending, without a row; its write
        // truncates the target before that target's rows.
        bool truncates = false;
        bool before_truncate = false;  // settled without a row: a truncate of the batch erases it
        // With on_truncate: truncate only, the change's source position ("" when none).
        std::string version;
    };
    // Indices into messages(): the messages one write attempt carries.
    using Part = std::vector<std::size_t>;

    void add(Delivery delivery);
    bool empty() const { return messages_.empty(); }
    std::size_t size() const { return messages_.size(); }
    std::size_t body_bytes() const { return body_bytes_; }
    std::uint64_t first_tag() const { return messages_.front().delivery.delivery_tag; }
    std::uint64_t last_tag() const { return messages_.back().delivery.delivery_tag; }
    // The tag an ack (multiple) of this batch may name: the last one not rejected. RabbitMQ
    // closes the channel on an ack of a tag it no longer holds ("unknown delivery tag"), which
    // would redeliver the whole batch.
    std::optional<std::uint64_t> last_ackable_tag() const;
    const std::vector<Message>& messages() const { return messages_; }

    // Turns every message into its rows (its route's table and its children's), or into poison
    // with the reason: a body over max_message_bytes (received or decompressed), an encoding it
    // cannot decode, a delivery count over max_redeliveries, no matching route, a mapping
    // failure of the parent or of any child (reasons bounded by bounded_reason, values elided
    // with `redact`). `mappers` has one per route.
    void map(const PipelineConfig& pipeline, std::vector<AggregateMapper>& mappers, bool redact);

    // The messages still to write.
    Part pending() const;
    // The rows of `part`, per table (table_targets() order), for one write. Valid until the next
    // call or map().
    std::vector<TargetRows> rows_of(const Part& part);
    void mark_committed(const Part& part);
    // A truncate made poison gives back the changes it alone erased (drop_truncated): they are
    // pending again, to be written as if the truncate had not been in the batch.
    void mark_poison(std::size_t message, std::string reason);
    void mark_rejected(std::size_t message);
    void mark_dead_lettered(std::size_t message) {
        messages_[message].status = Status::dead_lettered;
    }

    // After PostgreSQL refused `part` for bad data: the parts to try next, in the order to try
    // them (last first), or none when `part` is a single message (which is then poison). The row
    // PostgreSQL blamed (counted within `failed_target`'s rows of the part) is tried alone after
    // the rest; without a blame the part is halved. `failed_target` is a table index: a row of
    // a child table points back to the message that made it. Only a row that fails alone is poison,
    // so a misread blame costs one transaction, never a good message. `in_order` (streams): the
    // parts come in message order (before the blamed row, the row, after it), so every commit
    // extends what committed before it.
    std::vector<Part> split(const Part& part, std::optional<std::size_t> blamed_row,
                            std::size_t failed_target, bool in_order = false) const;

    // After PostgreSQL refused the truncate of table `table` (WriteError::truncate_refused):
    // each truncate of that table in `part` alone, tried first, then the rest; none when `part`
    // is that single truncate (which is then poison).
    std::vector<Part> split_truncate(const Part& part, std::size_t table) const;

    void clear();
    // clear(), and give the buffers back (after a batch far larger than usual).
    void release();

  private:
    std::vector<Message> messages_;
    std::size_t body_bytes_ = 0;
    std::size_t mapped_ = 0;
    bool dropped_ = false;  // rows_ holds rows of messages a truncate dropped

    // on_truncate: truncate: settles the changes each truncate of the batch erases.
    void drop_truncated();
    // Whether truncate messages_[t] erases change messages_[m] (same table, older in the log).
    bool erases(std::size_t t, std::size_t m) const;
    std::vector<Part> split_ordered(const Part& part, std::optional<std::size_t> blamed_row,
                                    std::size_t failed_target, bool in_order) const;
    std::vector<Span> spans_;
    std::vector<std::string> rows_;     // per table: COPY text of the mapped messages
    std::vector<std::string> subsets_;  // per table: the rows of a part smaller than all
    std::string decoded_;               // a decompressed body, reused across messages
};

}  // namespace rmq2pg
