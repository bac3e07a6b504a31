// schema_evolution: basic, as a worker runs it before mapping a batch: the changes' schemas are
// compared with the table as the catalog last said (schema_evolution.cpp); what is missing is
// created by DDL in a transaction of its own, under the write guard (pg_schema_evolution.cpp);
// then the writer reconnects, so the catalog is read again and the mappers are rebuilt, and the
// batch is mapped against the table as it is now. A change whose field its column cannot hold
// is poison. Database failures are retried with backoff, the batch held, as writes are.
#include <spdlog/spdlog.h>

#include "body_decoding.h"
#include "dead_letter.h"
#include "schema_evolution.h"
#include "worker.h"
#include "write_plan.h"

namespace rmq2pg {

namespace {

// The rounds of one batch: the catalog read again once before any DDL (another worker or
// instance may have evolved the table already), then DDL and a read after it. A table changed
// under us between a read and the DDL costs one more round; four bound it.
constexpr int kEvolutionRounds = 4;

}  // namespace

void Worker::evolve_schema(Batch& batch, Backlog& backlog) {
    while (true) {
        try {
            evolve_schema_once(batch);
            return;
        } catch (const WriteError& e) {
            metrics_.write_failures++;
            auto delay = backoff_.next_delay();
            std::string reason = bounded_reason(e.what(), config_.log_redact_values);
            spdlog::error(
                "{} schema_evolution for the batch of {} (tags {}..{}) failed, retrying in {} "
                "ms: {} ({})",
                identity(), batch.size(), batch.first_tag(), batch.last_tag(), delay.count(),
                reason, to_string(e.kind()));
            metrics_.last_error.set(identity() + " schema_evolution: " + reason);
            disconnect_writer();
            wait(delay, &backlog, &batch);
            connect_writer_retrying(batch, backlog);
        }
    }
}

void Worker::evolve_schema_once(Batch& batch) {
    // What each pending change asks of the table; nullopt for what the mapper will refuse or
    // what carries no schema (tombstones, truncates, bare events).
    std::vector<std::optional<EventColumns>> events(batch.size());
    std::vector<std::optional<std::string>> unreadable(batch.size());
    std::vector<bool> skips(batch.size(), false);
    std::string decoded;
    std::vector<FieldColumn> fields;  // the union of the batch's fields, first type seen
    std::vector<std::string> key;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const Batch::Message& m = batch.messages()[i];
        if (m.status != Batch::Status::pending ||
            m.delivery.body.size() > pipeline_.max_message_bytes)
            continue;
        std::string_view body;
        if (decode_body(m.delivery.content_encoding, m.delivery.body, pipeline_.max_message_bytes,
                        decoded, body))
            continue;  // the mapping says why
        EventColumns event;
        if (auto error = read_event_columns(body, m.delivery.message_id, event)) {
            unreadable[i] = error;
            continue;
        }
        skips[i] = event.skip;
        if (!event.has_schema)
            continue;
        if (event.key.empty())
            event.key = pipeline_.key;
        if (key.empty())
            key = event.key;
        for (const auto& f : event.fields) {
            bool known = false;
            for (const auto& have : fields)
                known = known || have.name == f.name;
            if (!known)
                fields.push_back(f);
        }
        events[i] = std::move(event);
    }
    bool fresh = false;  // the catalog was read after this batch's evolution began
    for (int round = 0; round < kEvolutionRounds && !fields.empty(); ++round) {
        const TableSchema& table = writer_->table(0);
        std::string why;
        std::vector<std::string> statements =
            evolution_statements(table, fields, key, pipeline_.version, why);
        if (!why.empty()) {
            for (std::size_t i = 0; i < batch.size(); ++i)
                if (events[i])
                    batch.mark_poison(i, bounded_reason(why, config_.log_redact_values));
            break;
        }
        if (statements.empty())
            break;
        if (fresh) {
            const std::string qualified = table.schema + "." + table.name;
            bool changed = false;
            guarded(std::chrono::milliseconds(config_.postgres_write_timeout_ms),
                    "changing the table (schema_evolution)", "postgres.write_timeout_ms",
                    [&] { changed = writer_->evolve(0, statements); });
            // Logged by the session that changed the table; a race lost is no news.
            for (const auto& statement : statements)
                if (changed)
                    spdlog::info("{} schema_evolution on table {}: {}", identity(), qualified,
                                 statement);
                else
                    spdlog::debug(
                        "{} schema_evolution on table {}: already done by another "
                        "session: {}",
                        identity(), qualified, statement);
        }
        // The catalog again, and mappers for the table as it is now.
        disconnect_writer();
        connect_writer();
        fresh = true;
    }
    const TableSchema& table = writer_->table(0);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch.messages()[i].status != Batch::Status::pending)
            continue;
        if (table.exists) {
            if (events[i])
                if (auto conflict = evolution_conflict(table, *events[i]))
                    batch.mark_poison(i, bounded_reason(*conflict, config_.log_redact_values));
            continue;  // else mapped as usual
        }
        // Not created (yet): nothing of this change can be written. A tombstone or a truncate
        // has nothing to do.
        if (skips[i]) {
            batch.mark_committed(Batch::Part{i});
            continue;
        }
        std::string why = unreadable[i].value_or(
            events[i] ? "table " + pipeline_.qualified_table() + " still does not exist after " +
                            std::to_string(kEvolutionRounds) + " rounds of schema_evolution"
                      : "table " + pipeline_.qualified_table() +
                            " does not exist and this change carries no schema to create it "
                            "from (schema_evolution: basic needs Debezium's schema wrapper)");
        batch.mark_poison(i, bounded_reason(why, config_.log_redact_values));
    }
}

}  // namespace rmq2pg
