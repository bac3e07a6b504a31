// The batch of a worker; see batch.h.
#include "batch.h"

#include <algorithm>
#include <cstdlib>

#include "body_decoding.h"
#include "dead_letter.h"
#include "topic_match.h"

namespace rmq2pg {

namespace {

// Positions are decimal digits without leading zeros: the longer is the larger.
bool newer_position(const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a > b;
}

}  // namespace

void Batch::add(Delivery delivery) {
    body_bytes_ += delivery.body.size();
    messages_.emplace_back();
    messages_.back().delivery = std::move(delivery);
}

void Batch::map(const PipelineConfig& pipeline, std::vector<AggregateMapper>& mappers,
                bool redact) {
    auto targets = pipeline.targets();
    const std::size_t tables = table_targets(pipeline).size();
    rows_.resize(tables);
    for (auto& rows : rows_)
        rows.clear();
    spans_.clear();
    mapped_ = 0;
    // Rows are counted, not inferred from an empty buffer: a row can be empty (one text column
    // holding ""), and it still needs its separator.
    std::vector<std::size_t> row_count(tables, 0);
    std::vector<std::size_t> sizes_before(tables), counts_before(tables);
    const bool truncates = pipeline.on_truncate == OnTruncate::truncate;
    dropped_ = false;
    for (std::size_t index = 0; index < messages_.size(); ++index) {
        Message& m = messages_[index];
        if (m.status != Status::pending)
            continue;
        if (m.delivery.body.size() > pipeline.max_message_bytes) {
            m.status = Status::poison;
            m.reason = "message body of " + std::to_string(m.delivery.body.size()) +
                       " bytes exceeds max_message_bytes " +
                       std::to_string(pipeline.max_message_bytes);
            continue;
        }
        if (pipeline.max_redeliveries > 0) {
            // Quorum queues count deliveries themselves.
            if (auto count = m.delivery.header("x-delivery-count")) {
                if (std::atoll(count->text.c_str()) > pipeline.max_redeliveries) {
                    m.status = Status::poison;
                    m.reason = "delivered " + count->text + " times (max_redeliveries " +
                               std::to_string(pipeline.max_redeliveries) + ")";
                    continue;
                }
            }
        }
        // Routes are tried in order, first match wins; a pipeline without routes has one
        // target that takes everything.
        m.target = targets.size();
        for (std::size_t t = 0; t < targets.size() && m.target == targets.size(); ++t)
            if (pipeline.routes.empty() || topic_matches(targets[t]->match, m.delivery.routing_key))
                m.target = t;
        if (m.target == targets.size()) {
            m.status = Status::poison;
            m.reason = bounded_reason(
                "no route matches routing key '" + std::string(m.delivery.routing_key) + "'",
                redact);
            continue;
        }
        std::string_view body;
        if (auto error = decode_body(m.delivery.content_encoding, m.delivery.body,
                                     pipeline.max_message_bytes, decoded_, body)) {
            m.status = Status::poison;
            m.reason = bounded_reason(*error, redact);
            continue;
        }
        for (std::size_t t = 0; t < tables; ++t) {
            sizes_before[t] = rows_[t].size();
            counts_before[t] = row_count[t];
        }
        if (auto error = mappers[m.target].append(m.delivery, body, index, rows_, row_count)) {
            // A message is all its rows or none: a child that failed takes its parent's and
            // its siblings' rows with it.
            for (std::size_t t = 0; t < tables; ++t) {
                rows_[t].resize(sizes_before[t]);
                row_count[t] = counts_before[t];
            }
            m.status = Status::poison;
            m.reason = bounded_reason(*error, redact);
            continue;
        }
        if (truncates && mappers[m.target].skipped() &&
            mappers[m.target].skip_reason() == "truncate") {
            // Written with the batch, without a row: see drop_truncated().
            m.truncates = true;
            m.version = mappers[m.target].last_version();
            continue;
        }
        if (mappers[m.target].skipped()) {
            // Acknowledged with the batch, no row: a change-event tombstone or truncate.
            m.status = Status::committed;
            m.skipped = true;
            m.reason = mappers[m.target].skip_reason();
            continue;
        }
        m.first_span = spans_.size();
        for (std::size_t t = 0; t < tables; ++t) {
            if (row_count[t] == counts_before[t])
                continue;
            // Not the separator before the message's first row: rows_of puts its own.
            std::size_t offset = sizes_before[t] + (counts_before[t] > 0 ? 1 : 0);
            spans_.push_back(
                {t, offset, rows_[t].size() - offset, row_count[t] - counts_before[t]});
        }
        m.span_count = spans_.size() - m.first_span;
        m.mapped = true;
        if (truncates)
            m.version = mappers[m.target].last_version();
        ++mapped_;
    }
    if (truncates)
        drop_truncated();
}

bool Batch::erases(std::size_t t, std::size_t m) const {
    const Message& truncate = messages_[t];
    const Message& change = messages_[m];
    if (change.target != truncate.target || change.truncates)
        return false;
    // Older than the truncate in the source's log, wherever the queue delivered it; for a
    // truncate without a position, delivered before it.
    if (truncate.version.empty())
        return m < t;
    return !change.version.empty() && !newer_position(change.version, truncate.version);
}

void Batch::drop_truncated() {
    for (std::size_t t = 0; t < messages_.size(); ++t) {
        if (!messages_[t].truncates || messages_[t].status != Status::pending)
            continue;
        // A change the truncate erases is dropped, settled with the batch. What is left is
        // newer and is written after the truncate, which the write runs first.
        for (std::size_t i = 0; i < messages_.size(); ++i) {
            Message& m = messages_[i];
            if (m.status != Status::pending || !m.mapped || !erases(t, i))
                continue;
            m.status = Status::committed;
            m.mapped = false;
            m.before_truncate = true;
            --mapped_;
            dropped_ = true;
        }
    }
}

Batch::Part Batch::pending() const {
    Part part;
    for (std::size_t i = 0; i < messages_.size(); ++i)
        if (messages_[i].status == Status::pending)
            part.push_back(i);
    return part;
}

std::vector<TargetRows> Batch::rows_of(const Part& part) {
    // The first attempt sends the rows as mapped; retries send only what is left.
    std::size_t mapped_in_part = 0;
    for (std::size_t i : part)
        mapped_in_part += messages_[i].mapped ? 1 : 0;
    bool everything = !dropped_ && mapped_in_part == mapped_;
    subsets_.resize(rows_.size());
    std::vector<TargetRows> parts(rows_.size());
    for (std::size_t t = 0; t < rows_.size(); ++t) {
        parts[t].target = t;
        if (!everything)
            subsets_[t].clear();
    }
    for (std::size_t i : part) {
        const Message& m = messages_[i];
        if (m.truncates) {
            // Several truncates of one table in a part: the latest position guards them all.
            TargetRows& target_rows = parts[m.target];
            target_rows.truncate = true;
            if (newer_position(m.version, target_rows.truncate_version))
                target_rows.truncate_version = m.version;
            continue;
        }
        if (!m.mapped)
            continue;
        for (std::size_t s = m.first_span; s < m.first_span + m.span_count; ++s) {
            const Span& span = spans_[s];
            TargetRows& target_rows = parts[span.table];
            if (!everything) {
                std::string& subset = subsets_[span.table];
                if (target_rows.count > 0)
                    subset += '\n';
                subset.append(rows_[span.table], span.offset, span.length);
            }
            target_rows.count += span.count;
        }
    }
    for (std::size_t t = 0; t < rows_.size(); ++t)
        parts[t].rows = everything ? &rows_[t] : &subsets_[t];
    return parts;
}

void Batch::mark_committed(const Part& part) {
    for (std::size_t i : part)
        messages_[i].status = Status::committed;
}

std::optional<std::uint64_t> Batch::last_ackable_tag() const {
    for (auto m = messages_.rbegin(); m != messages_.rend(); ++m)
        if (m->status != Status::rejected)
            return m->delivery.delivery_tag;
    return std::nullopt;
}

void Batch::mark_rejected(std::size_t message) {
    messages_[message].status = Status::rejected;
}

void Batch::mark_poison(std::size_t message, std::string reason) {
    messages_[message].status = Status::poison;
    messages_[message].reason = std::move(reason);
    if (!messages_[message].truncates)
        return;
    // A refused truncate erased nothing: what it dropped is written after all, unless another
    // truncate of the batch, still to write or committed, erases it too.
    for (std::size_t i = 0; i < messages_.size(); ++i) {
        Message& m = messages_[i];
        if (!m.before_truncate || !erases(message, i))
            continue;
        bool erased = false;
        for (std::size_t t = 0; t < messages_.size() && !erased; ++t)
            erased = t != message && messages_[t].truncates &&
                     (messages_[t].status == Status::pending ||
                      messages_[t].status == Status::committed) &&
                     erases(t, i);
        if (erased)
            continue;
        m.status = Status::pending;
        m.mapped = true;
        m.before_truncate = false;
        ++mapped_;
    }
}

std::vector<Batch::Part> Batch::split_truncate(const Part& part, std::size_t table) const {
    Part rest;
    std::vector<Part> alone;
    for (std::size_t i : part) {
        if (messages_[i].truncates && messages_[i].target == table)
            alone.push_back(Part{i});
        else
            rest.push_back(i);
    }
    if (alone.empty() || (alone.size() == 1 && rest.empty()))
        return {};
    // Tried last-in-first-out: the truncates first, in delivery order, then the rest.
    std::vector<Part> out;
    if (!rest.empty())
        out.push_back(std::move(rest));
    for (auto t = alone.rbegin(); t != alone.rend(); ++t)
        out.push_back(std::move(*t));
    return out;
}

std::vector<Batch::Part> Batch::split(const Part& part, std::optional<std::size_t> blamed_row,
                                      std::size_t failed_target, bool in_order) const {
    if (part.size() <= 1)
        return {};
    // Truncates lead, so they stay in the part tried first: a truncate written after rows of
    // its table would erase them.
    Part ordered = part;
    std::stable_partition(ordered.begin(), ordered.end(),
                          [&](std::size_t i) { return messages_[i].truncates; });
    return split_ordered(ordered, blamed_row, failed_target, in_order);
}

std::vector<Batch::Part> Batch::split_ordered(const Part& part,
                                              std::optional<std::size_t> blamed_row,
                                              std::size_t failed_target, bool in_order) const {
    // The blamed row counts within its target's rows, which follow `part`'s order.
    std::optional<std::size_t> blamed;
    if (blamed_row) {
        std::size_t seen = 0;
        for (std::size_t j = 0; j < part.size() && !blamed; ++j) {
            const Message& m = messages_[part[j]];
            for (std::size_t s = m.first_span; s < m.first_span + m.span_count; ++s) {
                if (spans_[s].table != failed_target)
                    continue;
                if (*blamed_row < seen + spans_[s].count)
                    blamed = j;
                seen += spans_[s].count;
            }
        }
    }
    if (blamed && in_order) {
        // Tried last-in-first-out: pushed after, the row, before.
        auto at = part.begin() + static_cast<std::ptrdiff_t>(*blamed);
        std::vector<Part> out;
        if (at + 1 != part.end())
            out.emplace_back(at + 1, part.end());
        out.push_back(Part{*at});
        if (at != part.begin())
            out.emplace_back(part.begin(), at);
        return out;
    }
    if (blamed) {
        // The rest first (tried last-in-first-out: pushed last), then the blamed row alone.
        Part rest = part;
        rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(*blamed));
        return {Part{part[*blamed]}, rest};
    }
    auto middle = part.begin() + static_cast<std::ptrdiff_t>(part.size() / 2);
    return {Part(middle, part.end()), Part(part.begin(), middle)};
}

void Batch::clear() {
    messages_.clear();
    dropped_ = false;
    body_bytes_ = 0;
    mapped_ = 0;
}

void Batch::release() {
    clear();
    std::vector<Message>().swap(messages_);
    std::vector<std::string>().swap(rows_);
    std::vector<std::string>().swap(subsets_);
    std::vector<Span>().swap(spans_);
    std::string().swap(decoded_);
}

}  // namespace rmq2pg
