// The worker's promises, kept by a real Worker on its own thread over fakes of its real
// interfaces (Source, BatchWriter, DeadLetterSink, Endpoints): nothing is settled before the
// commit that holds it, only poison is set aside, failures retry without duplicates, the shutdown
// deadline holds. No network: the fakes stand for one broker and one database (World) and write
// one event log, which the checks read in order.
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "amqp_session.h"
#include "batch_writer.h"
#include "config.h"
#include "dead_letter_sink.h"
#include "delivery.h"
#include "endpoints.h"
#include "metrics.h"
#include "source.h"
#include "table_schema.h"
#include "worker.h"

using rmq2pg::AmqpError;
using rmq2pg::BatchWriter;
using rmq2pg::ColumnInfo;
using rmq2pg::ColumnMapping;
using rmq2pg::ColumnSource;
using rmq2pg::Config;
using rmq2pg::Coordination;
using rmq2pg::CoordinationRequest;
using rmq2pg::DeadLetterSink;
using rmq2pg::Delivery;
using rmq2pg::Endpoints;
using rmq2pg::HeaderValue;
using rmq2pg::OffsetWrite;
using rmq2pg::OnError;
using rmq2pg::PipelineConfig;
using rmq2pg::PipelineMetrics;
using rmq2pg::Source;
using rmq2pg::StopSignal;
using rmq2pg::StreamClaim;
using rmq2pg::TableSchema;
using rmq2pg::TargetRows;
using rmq2pg::TypeCategory;
using rmq2pg::Worker;
using rmq2pg::WorkerState;
using rmq2pg::WriteError;
using namespace std::chrono_literals;

namespace {

using Headers = std::vector<std::pair<std::string, HeaderValue>>;
using Clock = std::chrono::steady_clock;

// Polls `condition` until it holds or `limit` passed; every wait of these tests goes through it.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
    auto until = Clock::now() + limit;
    while (!condition()) {
        if (Clock::now() >= until)
            return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

// A message's own bytes, as the AMQP frame block is for a real delivery: the Delivery's views
// point into it and its `owner` deletes it.
struct Stored {
    std::string body;
    Headers headers;
};

std::optional<HeaderValue> find_stored_header(const void* headers, std::string_view name) {
    for (const auto& [key, value] : static_cast<const Stored*>(headers)->headers)
        if (key == name)
            return value;
    return std::nullopt;
}

// One entry of the log the fakes write, in the order things happened.
struct Event {
    enum class Kind { commit, settle_up_to, settle_one, reject, dead };
    Kind kind = Kind::commit;
    std::uint64_t tag = 0;       // all but commit
    std::vector<long long> ids;  // commit: the ids written; otherwise the id of `tag`
};

std::string to_string(const Event& e) {
    static const char* const names[] = {"commit", "settle_up_to", "settle_one", "reject", "dead"};
    std::string out = names[static_cast<int>(e.kind)];
    if (e.kind == Event::Kind::commit) {
        out += " ids";
        for (long long id : e.ids)
            out += " " + std::to_string(id);
    } else {
        out += " tag " + std::to_string(e.tag) + " (id " + std::to_string(e.ids.front()) + ")";
    }
    return out;
}

// What the fakes saw, copied out under the world's lock.
struct Snapshot {
    std::vector<Event> events;
    std::vector<std::uint64_t> delivered;          // tags, in delivery order
    std::map<std::uint64_t, long long> id_of;      // tag -> id
    std::set<std::uint64_t> settled;               // tags acked or rejected
    std::vector<std::string> violations;           // AMQP protocol errors, interface misuse
    std::vector<std::vector<long long>> attempts;  // ids of every write, also the refused ones
    std::vector<std::string> interrupts;           // reasons given to BatchWriter::interrupt
    int writers_opened = 0;
    int connects = 0;
    int sources_opened = 0;
    int sources_closed = 0;
    int dead_attempts = 0;

    std::string log() const {
        std::string out;
        for (const auto& e : events)
            out += to_string(e) + "\n";
        for (const auto& v : violations)
            out += "VIOLATION " + v + "\n";
        return out;
    }
    std::map<long long, int> commits() const {
        std::map<long long, int> count;
        for (const auto& e : events)
            if (e.kind == Event::Kind::commit)
                for (long long id : e.ids)
                    count[id]++;
        return count;
    }
    std::vector<long long> ids_of(Event::Kind kind) const {
        std::vector<long long> ids;
        for (const auto& e : events)
            if (e.kind == kind)
                ids.push_back(e.ids.front());
        return ids;
    }
    std::size_t count(Event::Kind kind) const {
        return static_cast<std::size_t>(std::count_if(
            events.begin(), events.end(), [kind](const Event& e) { return e.kind == kind; }));
    }
    bool all_settled() const {
        return std::all_of(delivered.begin(), delivered.end(),
                           [this](std::uint64_t tag) { return settled.count(tag) > 0; });
    }
    // Every settle that came before what it settles was committed, dead-lettered or rejected:
    // one line each. settle_one (on_error: stop) must follow a commit.
    std::vector<std::string> settles_before_their_outcome() const {
        std::set<long long> committed, set_aside;
        std::vector<std::string> out;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const Event& e = events[i];
            switch (e.kind) {
                case Event::Kind::commit:
                    committed.insert(e.ids.begin(), e.ids.end());
                    break;
                case Event::Kind::dead:
                case Event::Kind::reject:
                    set_aside.insert(e.ids.front());
                    break;
                case Event::Kind::settle_up_to:
                    for (std::uint64_t tag : delivered) {
                        long long id = id_of.at(tag);
                        if (tag <= e.tag && !committed.count(id) && !set_aside.count(id))
                            out.push_back("event " + std::to_string(i) + " (" + to_string(e) +
                                          ") settles id " + std::to_string(id) +
                                          " before it was committed or set aside");
                    }
                    break;
                case Event::Kind::settle_one:
                    if (!committed.count(e.ids.front()))
                        out.push_back("event " + std::to_string(i) + " (" + to_string(e) +
                                      ") settles an id not committed");
                    break;
            }
        }
        return out;
    }
};

// The broker and the database the fakes stand for: what is queued, what is settled, how writes
// and dead letters fail. Shared by the test thread, the worker thread and the worker's guard
// thread (keep_alive, interrupt): everything behind `lock_`.
class World {
  public:
    // --- the broker
    // A message {"id": N} (plus `padding` in a field of its own, to make it large).
    void publish(long long id, Headers headers = {}, std::size_t padding = 0) {
        std::string body = "{\"id\": " + std::to_string(id);
        if (padding > 0)
            body += ", \"pad\": \"" + std::string(padding, 'x') + "\"";
        body += "}";
        std::lock_guard<std::mutex> hold(lock_);
        queued_.push_back({std::move(body), std::move(headers)});
        ids_.push_back(id);
        changed_.notify_all();
    }
    void publish_range(long long first, long long last) {
        for (long long id = first; id <= last; ++id)
            publish(id);
    }

    std::optional<Delivery> next(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> hold(lock_);
        if (!changed_.wait_for(hold, timeout, [this] { return !queued_.empty(); }))
            return std::nullopt;
        auto* stored = new Stored(std::move(queued_.front()));
        queued_.pop_front();
        long long id = ids_.front();
        ids_.pop_front();
        Delivery d;
        d.owner = std::unique_ptr<void, void (*)(void*)>(
            stored, +[](void* p) { delete static_cast<Stored*>(p); });
        d.delivery_tag = next_tag_++;
        d.routing_key = "orders.created";
        d.body = stored->body;
        if (!stored->headers.empty()) {
            d.headers = stored;
            d.find_header = &find_stored_header;
        }
        seen_.delivered.push_back(d.delivery_tag);
        seen_.id_of[d.delivery_tag] = id;
        return d;
    }

    // As RabbitMQ does: the tag itself must be delivered and unsettled, or the channel closes
    // with "unknown delivery tag" (and nothing is settled).
    void settle_up_to(std::uint64_t tag) {
        std::lock_guard<std::mutex> hold(lock_);
        if (!unsettled(tag, "settle_up_to"))
            return;
        for (std::uint64_t t : seen_.delivered)
            if (t <= tag)
                seen_.settled.insert(t);
        log(Event::Kind::settle_up_to, tag);
    }
    void settle_one(std::uint64_t tag) { settle_single(Event::Kind::settle_one, tag); }
    void reject(std::uint64_t tag) { settle_single(Event::Kind::reject, tag); }
    void source_opened() {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.sources_opened++;
    }
    // Closing returns what is unsettled to the queue.
    void source_closed() {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.sources_closed++;
    }
    std::atomic<int> keep_alives{0};
    // Sources that read ahead as StreamSource does (ReadingAheadSource), and what they read so.
    std::atomic<bool> sources_read_ahead{false};
    std::atomic<int> read_ahead{0};
    void violation(const std::string& what) {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.violations.push_back(what);
    }

    // --- the database
    // Writes that hold `id` fail with bad_data; with `blame`, the error names its row.
    void refuse(long long id, bool blame) {
        std::lock_guard<std::mutex> hold(lock_);
        refused_[id] = blame;
    }
    // The next `count` writes fail with `kind` (count < 0: every write).
    void fail_writes(int count, WriteError::Kind kind) {
        std::lock_guard<std::mutex> hold(lock_);
        write_failures_ = count;
        failure_kind_ = kind;
    }
    // The next `count` connects fail with `kind` (count < 0: every connect).
    void fail_connects(int count, WriteError::Kind kind = WriteError::Kind::connection) {
        std::lock_guard<std::mutex> hold(lock_);
        connect_failures_ = count;
        connect_failure_kind_ = kind;
    }
    void connect() {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.connects++;
        if (connect_failures_ != 0 && !healed_) {
            if (connect_failures_ > 0)
                connect_failures_--;
            throw WriteError(connect_failure_kind_, "fake: connection refused");
        }
    }
    // The next `count` writes block until interrupted.
    void block_writes(int count) {
        std::lock_guard<std::mutex> hold(lock_);
        blocked_writes_ = count;
    }
    // What an interrupt leaves behind: the writer fails every call after it.
    struct WriterState {
        bool interrupted = false;
        std::string reason;
    };
    void writer_opened() {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.writers_opened++;
    }
    void interrupt(WriterState& writer, const std::string& reason) {
        std::lock_guard<std::mutex> hold(lock_);
        writer.interrupted = true;
        writer.reason = reason;
        seen_.interrupts.push_back(reason);
        changed_.notify_all();
    }
    // Every write takes this long before it does anything (the time a COPY and COMMIT take).
    std::atomic<int> write_ms{0};
    void write(WriterState& writer, const std::vector<TargetRows>& parts) {
        std::this_thread::sleep_for(std::chrono::milliseconds(write_ms.load()));
        std::unique_lock<std::mutex> hold(lock_);
        std::vector<long long> ids = ids_in(parts);
        seen_.attempts.push_back(ids);
        if (blocked_writes_ != 0) {
            blocked_writes_--;
            changed_.wait(hold, [&] { return writer.interrupted || healed_; });
        }
        if (writer.interrupted)
            throw WriteError(WriteError::Kind::connection, writer.reason);
        if (write_failures_ != 0 && !healed_) {
            if (write_failures_ > 0)
                write_failures_--;
            throw WriteError(failure_kind_, "fake failure", "40001");
        }
        for (std::size_t row = 0; row < ids.size(); ++row) {
            auto refused = refused_.find(ids[row]);
            if (refused != refused_.end() && !healed_)
                throw WriteError(
                    WriteError::Kind::bad_data,
                    "invalid input syntax for type bigint: \"" + std::to_string(ids[row]) + "\"",
                    "22P02", refused->second ? std::optional<std::size_t>(row) : std::nullopt);
        }
        // COMMIT returned: only now is it in the log.
        seen_.events.push_back({Event::Kind::commit, 0, ids});
    }

    // --- the dead-letter target
    // The next `count` publishes fail with a broker error (count < 0: every publish).
    void fail_dead_letters(int count) {
        std::lock_guard<std::mutex> hold(lock_);
        dead_letter_failures_ = count;
    }
    void cannot_dead_letter(long long id) {
        std::lock_guard<std::mutex> hold(lock_);
        unpublishable_.insert(id);
    }
    void dead_letter(const Delivery& delivery) {
        std::lock_guard<std::mutex> hold(lock_);
        seen_.dead_attempts++;
        long long id = seen_.id_of.at(delivery.delivery_tag);
        if (dead_letter_failures_ != 0 && !healed_) {
            if (dead_letter_failures_ > 0)
                dead_letter_failures_--;
            throw AmqpError(AmqpError::Kind::connection, "fake: the broker went away");
        }
        if (unpublishable_.count(id) && !healed_)
            throw AmqpError(AmqpError::Kind::unpublishable, "fake: headers do not fit a frame");
        log(Event::Kind::dead, delivery.delivery_tag);
    }

    // Ends every failure and block, so that a worker stuck on one can end and be joined.
    void heal() {
        std::lock_guard<std::mutex> hold(lock_);
        healed_ = true;
        changed_.notify_all();
    }

    Snapshot snapshot() const {
        std::lock_guard<std::mutex> hold(lock_);
        return seen_;
    }
    // Everything queued was delivered, and settled (or the broker refused a settle).
    bool drained() const {
        std::lock_guard<std::mutex> hold(lock_);
        return queued_.empty() && (seen_.all_settled() || !seen_.violations.empty());
    }

  private:
    // Parses the ids out of COPY rows: the mapper writes an id's digits, rows separated by '\n'.
    std::vector<long long> ids_in(const std::vector<TargetRows>& parts) {
        std::vector<long long> ids;
        for (const auto& part : parts) {
            std::size_t rows = 0;
            const std::string& text = *part.rows;
            for (std::size_t start = 0; part.count > 0 && start <= text.size(); ++rows) {
                std::size_t end = std::min(text.find('\n', start), text.size());
                ids.push_back(std::atoll(text.substr(start, end - start).c_str()));
                start = end + 1;
            }
            if (rows != part.count)
                seen_.violations.push_back("a write of " + std::to_string(rows) +
                                           " rows says it has " + std::to_string(part.count));
        }
        return ids;
    }
    bool unsettled(std::uint64_t tag, const char* what) {
        if (seen_.id_of.count(tag) && !seen_.settled.count(tag))
            return true;
        seen_.violations.push_back(std::string(what) + " " + std::to_string(tag) +
                                   ": unknown delivery tag (PRECONDITION_FAILED)");
        return false;
    }
    void settle_single(Event::Kind kind, std::uint64_t tag) {
        std::lock_guard<std::mutex> hold(lock_);
        if (!unsettled(tag, kind == Event::Kind::reject ? "reject" : "settle_one"))
            return;
        seen_.settled.insert(tag);
        log(kind, tag);
    }
    void log(Event::Kind kind, std::uint64_t tag) {
        seen_.events.push_back({kind, tag, {seen_.id_of.at(tag)}});
    }

    mutable std::mutex lock_;
    std::condition_variable changed_;  // a publish, an interrupt, heal()
    std::deque<Stored> queued_;
    std::deque<long long> ids_;  // the id of each queued message
    std::uint64_t next_tag_ = 1;
    std::map<long long, bool> refused_;  // id -> blamed
    int write_failures_ = 0;
    WriteError::Kind failure_kind_ = WriteError::Kind::transient;
    int blocked_writes_ = 0;
    int connect_failures_ = 0;
    WriteError::Kind connect_failure_kind_ = WriteError::Kind::connection;
    int dead_letter_failures_ = 0;
    std::set<long long> unpublishable_;
    bool healed_ = false;
    Snapshot seen_;
};

class FakeSource : public Source {
  public:
    explicit FakeSource(World& world) : world_(world) { world_.source_opened(); }
    ~FakeSource() override { world_.source_closed(); }
    std::optional<Delivery> next(std::chrono::milliseconds timeout) override {
        return world_.next(timeout);
    }
    void settle_up_to(std::uint64_t tag) override { world_.settle_up_to(tag); }
    void settle_one(std::uint64_t tag) override { world_.settle_one(tag); }
    void reject(std::uint64_t tag) override { world_.reject(tag); }
    void keep_alive() override { world_.keep_alives++; }
    std::chrono::milliseconds keep_alive_interval() const override { return 20ms; }

  private:
    World& world_;
};

// A source that reads ahead as StreamSource does: during a guarded call the guard's thread
// fills its own buffer (up to `kAhead`), which next() hands out first. Any moment two threads
// are inside it at once is a violation: rabbitmq-c's connections are not thread-safe.
class ReadingAheadSource : public FakeSource {
  public:
    static constexpr std::size_t kAhead = 7;
    explicit ReadingAheadSource(World& world) : FakeSource(world), world_(world) {}
    std::optional<Delivery> next(std::chrono::milliseconds timeout) override {
        Inside inside(*this);
        if (!ahead_.empty()) {
            Delivery d = std::move(ahead_.front());
            ahead_.pop_front();
            return d;
        }
        return FakeSource::next(timeout);
    }
    void settle_up_to(std::uint64_t tag) override {
        Inside inside(*this);
        FakeSource::settle_up_to(tag);
    }
    void settle_one(std::uint64_t tag) override {
        Inside inside(*this);
        FakeSource::settle_one(tag);
    }
    void reject(std::uint64_t tag) override {
        Inside inside(*this);
        FakeSource::reject(tag);
    }
    void keep_alive() override {
        Inside inside(*this);
        FakeSource::keep_alive();
    }
    bool reads_ahead() const override { return true; }
    void read_ahead(std::chrono::milliseconds budget) override {
        Inside inside(*this);
        auto until = Clock::now() + budget;
        while (ahead_.size() < kAhead && Clock::now() < until) {
            auto d = FakeSource::next(0ms);
            if (!d)
                break;
            ahead_.push_back(std::move(*d));
            world_.read_ahead++;
        }
    }

  private:
    struct Inside {
        explicit Inside(ReadingAheadSource& s) : source(s) {
            if (source.inside_.exchange(true))
                source.world_.violation("two threads inside the source at once");
        }
        ~Inside() { source.inside_ = false; }
        ReadingAheadSource& source;
    };
    World& world_;
    std::atomic<bool> inside_{false};
    std::deque<Delivery> ahead_;
};

// One table, orders(id bigint), as the catalog would describe it.
class FakeWriter : public BatchWriter {
  public:
    explicit FakeWriter(World& world) : world_(world) {
        world_.writer_opened();
        table_.schema = "public";
        table_.name = "orders";
        table_.columns.push_back(ColumnInfo{"id", "bigint", TypeCategory::text, true});
    }
    void connect() override {
        world_.connect();
        connected_ = true;
    }
    const TableSchema& table(std::size_t) const override { return table_; }
    void write(const std::vector<TargetRows>& parts, const std::vector<OffsetWrite>&) override {
        // PgWriter has no tables before its catalog is read: it would index an empty vector.
        if (!connected_)
            world_.violation("a write through a writer whose connect failed");
        world_.write(state_, parts);
    }
    Coordination coordinate(const CoordinationRequest&) override {
        throw WriteError(WriteError::Kind::schema, "the fake world has no streams");
    }
    void prune() override {}
    void interrupt(const std::string& reason) override { world_.interrupt(state_, reason); }

  private:
    World& world_;
    TableSchema table_;
    World::WriterState state_;  // behind the world's lock
    bool connected_ = false;    // the worker's thread only
};

class FakeDeadLetters : public DeadLetterSink {
  public:
    explicit FakeDeadLetters(World& world) : world_(world) {}
    void publish(const Delivery& delivery, const std::string&) override {
        world_.dead_letter(delivery);
    }
    void reset() override {}

  private:
    World& world_;
};

class FakeEndpoints : public Endpoints {
  public:
    explicit FakeEndpoints(World& world) : world_(world), dead_letters_(world) {}
    std::unique_ptr<Source> open_source() override {
        if (world_.sources_read_ahead)
            return std::make_unique<ReadingAheadSource>(world_);
        return std::make_unique<FakeSource>(world_);
    }
    std::unique_ptr<Source> open_stream_source(const std::vector<StreamClaim>&) override {
        return open_source();
    }
    std::unique_ptr<BatchWriter> open_writer() override {
        return std::make_unique<FakeWriter>(world_);
    }
    DeadLetterSink& dead_letters() override { return dead_letters_; }
    void broker_failed() override {}
    std::string source_description() const override { return "a fake queue"; }

  private:
    World& world_;
    FakeDeadLetters dead_letters_;
};

// Retries fast, so that a test of a few failures takes milliseconds.
Config fast_config() {
    Config config;
    config.postgres_url = "postgresql://fake/db";
    config.retry.initial_ms = 5;
    config.retry.max_ms = 20;
    return config;
}

// orders(id) from /id, batches of `batch_messages`. Messages queued before the worker starts
// fill them exactly (the fake hands them out at once); max_delay_ms closes the last, partial
// one, and is long enough that a slow run (TSan) does not close a batch early.
PipelineConfig orders_pipeline(std::size_t batch_messages) {
    PipelineConfig p;
    p.name = "orders";
    p.queue = "orders";
    p.table_name = "orders";
    ColumnMapping id;
    id.column = "id";
    id.source_text = "/id";
    id.source = {ColumnSource::Kind::json_pointer, "/id"};
    id.required = true;
    p.columns.push_back(id);
    p.prefetch = 100;
    p.batch.max_messages = batch_messages;
    p.batch.max_bytes = 1024 * 1024;
    p.batch.max_delay_ms = 100;
    return p;
}

// The worker logs every retry; RMQ2PG_TEST_LOGS=1 shows it.
struct QuietLogs {
    spdlog::level::level_enum saved = spdlog::get_level();
    QuietLogs() {
        if (std::getenv("RMQ2PG_TEST_LOGS") == nullptr)
            spdlog::set_level(spdlog::level::off);
    }
    ~QuietLogs() { spdlog::set_level(saved); }
};

// A Worker running on its own thread over fakes of `world`, stopped and joined at the latest
// when this goes out of scope.
class Running {
  public:
    Running(World& world, const Config& config, const PipelineConfig& pipeline)
        : world_(world),
          worker_(config, pipeline, 0, stop_, metrics_, std::make_unique<FakeEndpoints>(world)),
          thread_([this] {
              worker_.run();
              returned_ = true;
          }) {}
    ~Running() {
        if (thread_.joinable())
            stop(0ms);
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

    // Requests the stop with its deadline `grace` ahead and waits for run() to return. False
    // when it did not within `limit`: the world is then healed, so that the thread ends.
    bool stop(std::chrono::milliseconds grace, std::chrono::milliseconds limit = 5s) {
        stop_.deadline = (Clock::now() + grace).time_since_epoch().count();
        stop_.requested = true;
        bool returned = eventually([this] { return returned_.load(); }, limit);
        if (!returned)
            world_.heal();
        thread_.join();
        return returned;
    }
    const Worker& worker() const { return worker_; }
    bool abandoned() const { return stop_.abandoned.load(); }
    const PipelineMetrics& metrics() const { return metrics_; }

  private:
    QuietLogs quiet_;
    World& world_;
    StopSignal stop_;
    PipelineMetrics metrics_;
    Worker worker_;
    std::atomic<bool> returned_{false};
    std::thread thread_;  // last: starts once the worker exists
};

// The promises every run keeps, whatever failed: the broker never refused a settle, nothing
// was settled before its outcome, nothing committed twice.
void check_promises(const Snapshot& seen) {
    INFO("event log:\n" << seen.log());
    CHECK(seen.violations.empty());
    CHECK(seen.settles_before_their_outcome().empty());
    for (const auto& [id, times] : seen.commits()) {
        INFO("id " << id);
        CHECK(times == 1);
    }
}

std::vector<long long> ids_from(long long first, long long last, std::set<long long> except = {}) {
    std::vector<long long> ids;
    for (long long id = first; id <= last; ++id)
        if (!except.count(id))
            ids.push_back(id);
    return ids;
}

std::vector<long long> committed_ids(const Snapshot& seen) {
    std::vector<long long> ids;
    for (const auto& [id, times] : seen.commits())
        ids.push_back(id);
    return ids;
}

}  // namespace

TEST_CASE("nothing is settled before the commit that holds it returned", "[worker]") {
    World world;
    world.publish_range(1, 23);
    world.fail_writes(1, WriteError::Kind::transient);
    world.refuse(12, true);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.all_settled());
    CHECK(committed_ids(seen) == ids_from(1, 23, {12}));
    CHECK(seen.ids_of(Event::Kind::dead) == std::vector<long long>{12});
    // One ack (multiple) per batch: 23 messages in batches of 5.
    CHECK(seen.count(Event::Kind::settle_up_to) == 5);
    CHECK(seen.count(Event::Kind::settle_one) == 0);
    CHECK_FALSE(running.abandoned());
}

TEST_CASE("only the row PostgreSQL blames is set aside; the rest of its batch commits once",
          "[worker]") {
    World world;
    world.publish_range(1, 10);
    world.refuse(5, true);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(10);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    // The blame is used, not bisected: the whole batch, the rest in one commit, the blamed row.
    REQUIRE(seen.attempts.size() == 3);
    CHECK(seen.attempts[1] == ids_from(1, 10, {5}));
    CHECK(seen.attempts[2] == std::vector<long long>{5});
    CHECK(seen.count(Event::Kind::commit) == 1);
    CHECK(committed_ids(seen) == ids_from(1, 10, {5}));
    CHECK(seen.ids_of(Event::Kind::dead) == std::vector<long long>{5});
    CHECK(seen.ids_of(Event::Kind::settle_up_to) == std::vector<long long>{10});
    CHECK(running.metrics().dead_lettered.load() == 1);
    CHECK(running.metrics().committed.load() == 9);
}

TEST_CASE("without a blamed row, bisection sets aside exactly the bad rows", "[worker]") {
    World world;
    std::set<long long> bad;
    long long last = 0;
    SECTION("one bad row") {
        bad = {7};
        last = 10;
    }
    SECTION("several bad rows, two of them adjacent") {
        bad = {2, 7, 8, 16};
        last = 16;
    }
    world.publish_range(1, last);
    for (long long id : bad)
        world.refuse(id, false);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(16);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.all_settled());
    CHECK(committed_ids(seen) == ids_from(1, last, bad));
    auto dead = seen.ids_of(Event::Kind::dead);
    CHECK(std::set<long long>(dead.begin(), dead.end()) == bad);
    CHECK(dead.size() == bad.size());
}

TEST_CASE("a dead letter that fails to publish keeps its message unsettled until it is published",
          "[worker]") {
    World world;
    world.publish_range(1, 10);
    world.refuse(5, true);
    world.fail_dead_letters(3);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(10);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.dead_attempts == 4);
    // The order says it: the rest committed, the dead letter confirmed, then the one ack.
    REQUIRE(seen.events.size() == 3);
    CHECK(seen.events[0].kind == Event::Kind::commit);
    CHECK(to_string(seen.events[1]) == "dead tag 5 (id 5)");
    CHECK(to_string(seen.events[2]) == "settle_up_to tag 10 (id 10)");
}

TEST_CASE("a message that can never be dead-lettered is rejected, not retried forever",
          "[worker]") {
    World world;
    world.publish_range(1, 10);
    world.refuse(5, true);
    world.cannot_dead_letter(5);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(10);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.dead_attempts == 1);
    CHECK(seen.ids_of(Event::Kind::dead).empty());
    CHECK(seen.ids_of(Event::Kind::reject) == std::vector<long long>{5});
    CHECK(committed_ids(seen) == ids_from(1, 10, {5}));
    CHECK(seen.all_settled());
}

TEST_CASE("a message delivered more than max_redeliveries times is dead-lettered unwritten",
          "[worker]") {
    World world;
    world.publish(1);
    // At the cap is not over it.
    world.publish(2, {{"x-delivery-count", HeaderValue{HeaderValue::Kind::number, "3"}}});
    world.publish(3);
    world.publish(4, {{"x-delivery-count", HeaderValue{HeaderValue::Kind::number, "5"}}});
    world.publish(5);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    pipeline.max_redeliveries = 3;
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.ids_of(Event::Kind::dead) == std::vector<long long>{4});
    CHECK(committed_ids(seen) == std::vector<long long>{1, 2, 3, 5});
    for (const auto& attempt : seen.attempts)
        CHECK(std::count(attempt.begin(), attempt.end(), 4) == 0);
    CHECK(seen.all_settled());
}

TEST_CASE("at the shutdown deadline a worker abandons what it cannot commit and settles none of it",
          "[worker]") {
    World world;
    world.publish_range(1, 5);
    world.fail_writes(-1, WriteError::Kind::transient);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.snapshot().attempts.size() >= 2; }));

    auto asked = Clock::now();
    bool returned = running.stop(300ms, 2s);
    CHECK(returned);
    // Not before the deadline: the batch is retried until then.
    CHECK(Clock::now() - asked >= 300ms);
    CHECK(running.abandoned());
    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    CHECK(seen.events.empty());
    CHECK(seen.settled.empty());
    CHECK(seen.violations.empty());
}

TEST_CASE("failed writes retry the same batch and commit each message once", "[worker]") {
    World world;
    WriteError::Kind kind = WriteError::Kind::transient;
    int writers = 1;
    SECTION("transient failures keep the connection") {
        kind = WriteError::Kind::transient;
        writers = 1;
    }
    SECTION("a lost connection is rebuilt") {
        kind = WriteError::Kind::connection;
        writers = 4;
    }
    world.publish_range(1, 8);
    world.fail_writes(3, kind);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(8);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    REQUIRE(seen.attempts.size() == 4);
    for (const auto& attempt : seen.attempts)
        CHECK(attempt == ids_from(1, 8));
    CHECK(committed_ids(seen) == ids_from(1, 8));
    CHECK(seen.writers_opened == writers);
    CHECK(seen.ids_of(Event::Kind::settle_up_to) == std::vector<long long>{8});
    CHECK(running.metrics().write_failures.load() == 3);
}

TEST_CASE("a write that hangs is cut at postgres.write_timeout_ms and retried on a new connection",
          "[worker]") {
    World world;
    world.publish_range(1, 4);
    world.block_writes(1);
    Config config = fast_config();
    config.postgres_write_timeout_ms = 150;
    PipelineConfig pipeline = orders_pipeline(4);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    REQUIRE(seen.interrupts.size() == 1);
    CHECK_THAT(seen.interrupts[0], Catch::Contains("postgres.write_timeout_ms"));
    CHECK(seen.writers_opened == 2);
    CHECK(committed_ids(seen) == ids_from(1, 4));
    CHECK(seen.all_settled());
}

TEST_CASE("on_error: reject rejects the poison message and commits the others", "[worker]") {
    World world;
    world.publish_range(1, 10);
    world.refuse(5, true);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(10);
    pipeline.on_error = OnError::reject;
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.ids_of(Event::Kind::reject) == std::vector<long long>{5});
    CHECK(seen.dead_attempts == 0);
    CHECK(committed_ids(seen) == ids_from(1, 10, {5}));
    CHECK(seen.all_settled());
}

TEST_CASE("on_error: stop settles what committed one by one and pauses before the poison message",
          "[worker]") {
    World world;
    world.publish_range(1, 10);
    world.refuse(5, true);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(10);
    pipeline.on_error = OnError::stop;
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return running.worker().state() == WorkerState::paused; }));
    Snapshot seen = world.snapshot();
    // Paused with its source closed, so the poison message is back in its queue.
    CHECK(seen.sources_closed == seen.sources_opened);
    REQUIRE(running.stop(1s));

    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(committed_ids(seen) == ids_from(1, 10, {5}));
    CHECK(seen.ids_of(Event::Kind::settle_one) == ids_from(1, 10, {5}));
    CHECK(seen.count(Event::Kind::settle_up_to) == 0);
    CHECK(seen.count(Event::Kind::reject) == 0);
    CHECK(seen.dead_attempts == 0);
    CHECK(seen.settled.count(5) == 0);
    CHECK(world.snapshot().events.size() == seen.events.size());
}

// Defects these tests found (fixed): settling must never name a rejected tag, and the shutdown
// deadline ends every retry loop, not only the write's.

// RabbitMQ answers an ack (multiple) whose own tag is no longer outstanding with
// PRECONDITION_FAILED "unknown delivery tag" and closes the channel: the batch's committed
// messages come back and are written again.
TEST_CASE("a batch that ends with a rejected message is settled without acking the rejected tag",
          "[worker]") {
    World world;
    world.publish_range(1, 5);
    world.refuse(5, true);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    pipeline.on_error = OnError::reject;
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.ids_of(Event::Kind::reject) == std::vector<long long>{5});
    CHECK(seen.all_settled());
}

TEST_CASE(
    "a batch that ends with a message impossible to dead-letter is settled without acking "
    "its tag",
    "[worker]") {
    World world;
    world.publish_range(1, 5);
    world.refuse(5, true);
    world.cannot_dead_letter(5);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.ids_of(Event::Kind::reject) == std::vector<long long>{5});
    CHECK(seen.all_settled());
}

// Worker::dead_letter waits without its batch: once stop is requested and the backlog is empty,
// wait() returns at once, so the publish is retried in a hot loop and the deadline never ends it.
TEST_CASE("the shutdown deadline also ends a dead-letter publish that keeps failing", "[worker]") {
    World world;
    world.publish_range(1, 5);
    world.refuse(3, true);
    world.fail_dead_letters(-1);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.snapshot().dead_attempts >= 2; }));

    CHECK(running.stop(300ms, 1500ms));
    CHECK(running.abandoned());
    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    CHECK(seen.settled.empty());
}

// A pooled connect that waited too long for the pool fails as transient, not as a lost
// connection: the worker must still drop that writer and connect again before writing.
TEST_CASE("a writer whose connect failed with any kind is never written through", "[worker]") {
    World world;
    Config config = fast_config();  // the worker keeps references to both
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    world.publish(1);
    REQUIRE(eventually([&] { return world.drained(); }));  // connected, consuming
    world.fail_writes(1, WriteError::Kind::connection);
    world.fail_connects(1, WriteError::Kind::transient);
    world.publish_range(2, 6);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));
    Snapshot seen = world.snapshot();
    check_promises(seen);
    CHECK(seen.connects >= 3);
}

// Worker::connect_writer_retrying waits without its batch too: after a batch above 16 MiB the
// writer reconnects, and a database down at shutdown keeps it reconnecting past the deadline.
TEST_CASE("the shutdown deadline also ends reconnecting after a large batch", "[worker]") {
    World world;
    world.publish(1, {}, 17 * 1024 * 1024);
    Config config = fast_config();
    PipelineConfig pipeline = orders_pipeline(5);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    world.fail_connects(-1);
    world.publish(2);
    REQUIRE(eventually([&] { return world.snapshot().connects >= 3; }));

    CHECK(running.stop(300ms, 1500ms));
    CHECK(running.abandoned());
    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    CHECK(seen.settled.count(2) == 0);
}

TEST_CASE(
    "a source that reads ahead during writes is used by one thread at a time and each message "
    "commits once, in order",
    "[worker]") {
    World world;
    world.sources_read_ahead = true;
    world.write_ms = 5;
    world.publish_range(1, 120);
    Config config = fast_config();  // the worker keeps references to both
    PipelineConfig pipeline = orders_pipeline(10);
    Running running(world, config, pipeline);
    REQUIRE(eventually([&] { return world.drained(); }));
    REQUIRE(running.stop(1s));

    Snapshot seen = world.snapshot();
    INFO("event log:\n" << seen.log());
    check_promises(seen);
    CHECK(seen.all_settled());
    std::vector<long long> in_commit_order;
    for (const auto& e : seen.events)
        if (e.kind == Event::Kind::commit)
            in_commit_order.insert(in_commit_order.end(), e.ids.begin(), e.ids.end());
    CHECK(in_commit_order == ids_from(1, 120));
    // The guard's thread did read ahead while the worker wrote.
    CHECK(world.read_ahead.load() > 0);
}
