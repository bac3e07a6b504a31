// rmq2pg-bench: the measuring half of scripts/bench.sh. Publishes generated orders with confirms,
// measures the two ceilings (broker drain-only, PostgreSQL COPY of the same rows) and waits for
// the daemon's rows while sampling its CPU time and peak RSS. Prints "key value" lines.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "amqp_session.h"
#include "config.h"
#include "pg_writer.h"
#include "row_mapper.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: rmq2pg-bench COMMAND [--option value]...\n"
    "  publish   --amqp URL --queues Q[,Q2] --count N [--start 1] [--size 200] [--seed 1]\n"
    "            [--window 2000] [--declare] [--rate R --duration S]   (R msgs/s for S s)\n"
    "            [--keys K]   (ids start..start+K-1 in turn, each message with \"version\": its\n"
    "            number in the run, so later changes of a key carry higher versions)\n"
    "  drain     --amqp URL --queue Q --count N [--prefetch 5000] [--ack-every 1000]\n"
    "            [--consumers 1] [--timeout 600] [--latency]   (publish-to-delivery percentiles)\n"
    "            [--pause-ms 0] [--ack-late]   (stop reading for that long after each ack, as a\n"
    "            commit does; --ack-late: before the ack, as the daemon acks after its commit)\n"
    "            [--priorities]   (consumer c gets x-priority -c: the first takes all it has\n"
    "            prefetch room for) [--stream]   (Q is a stream: read it from first)\n"
    "  copy      --pg URL --config YAML --table T --count N [--start 1] [--size 200] [--seed 1]\n"
    "            [--workers 2] [--batch 1000] [--max-bytes 4194304] [--queue Q]\n"
    "            (rows mapped and chunked into transactions as the daemon does)\n"
    "  wait-rows --pg URL --table T --count N [--amqp URL --queue Q] [--pid PID]\n"
    "            [--since EPOCH_SECONDS] [--timeout 600] [--offset-of S]   (S read from offset 0:\n"
    "            poll the next offset rmq2pg_state stores for it until it reaches N)\n";

struct Usage {
    std::string what;
};

// --key value pairs; flags without a value (--declare) map to "1".
class Args {
  public:
    Args(int argc, char** argv, int first) {
        for (int i = first; i < argc; ++i) {
            std::string key = argv[i];
            if (key.rfind("--", 0) != 0)
                throw Usage{"unexpected argument '" + key + "'"};
            key = key.substr(2);
            if (key == "declare" || key == "latency" || key == "ack-late" || key == "priorities" ||
                key == "stream") {
                values_[key] = "1";
                continue;
            }
            if (i + 1 >= argc)
                throw Usage{"--" + key + " needs a value"};
            values_[key] = argv[++i];
        }
    }
    std::string text(const std::string& key, const std::string& fallback = "") {
        used_.push_back(key);
        auto it = values_.find(key);
        if (it != values_.end())
            return it->second;
        if (fallback.empty())
            throw Usage{"--" + key + " is required"};
        return fallback;
    }
    std::string optional_text(const std::string& key) {
        used_.push_back(key);
        auto it = values_.find(key);
        return it == values_.end() ? "" : it->second;
    }
    long number(const std::string& key, long fallback) {
        used_.push_back(key);
        auto it = values_.find(key);
        return it == values_.end() ? fallback : std::stol(it->second);
    }
    double real(const std::string& key, double fallback) {
        used_.push_back(key);
        auto it = values_.find(key);
        return it == values_.end() ? fallback : std::stod(it->second);
    }
    bool flag(const std::string& key) { return !optional_text(key).empty(); }
    // Typos must not silently fall back to defaults in a measurement.
    void check_all_used() const {
        for (const auto& [key, value] : values_)
            if (std::find(used_.begin(), used_.end(), key) == used_.end())
                throw Usage{"unknown option --" + key};
    }

  private:
    std::map<std::string, std::string> values_;
    std::vector<std::string> used_;
};

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double epoch_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t epoch_micros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Whole numbers (counts) print in full, so the script can compare them as integers.
void print(const char* key, double value) {
    if (value == std::floor(value) && std::fabs(value) < 1e15)
        std::printf("%s %.0f\n", key, value);
    else
        std::printf("%s %.6g\n", key, value);
    std::fflush(stdout);
}

rmq2pg::AmqpUrl amqp_url(const std::string& text) {
    std::string error;
    auto url = rmq2pg::parse_amqp_url(text, error);
    if (!url)
        throw Usage{"--amqp " + rmq2pg::mask_url_password(text) + ": " + error};
    return *url;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, separator))
        if (!part.empty())
            parts.push_back(part);
    return parts;
}

// splitmix64: every field of order `id` derives from (seed, id) alone, so `copy` regenerates
// exactly the bodies `publish` sent, in any order, without storing them.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A realistic order of exactly `size` bytes (or its natural ~170 bytes when smaller), carrying
// its publish time in microseconds for the latency figures, and `version` when it is not 0.
std::string order_body(long id, std::uint64_t seed, long size, std::int64_t sent_us,
                       long version = 0) {
    static const char* currencies[] = {"EUR", "USD", "GBP", "CHF"};
    std::uint64_t r = mix(seed * 1000003ULL + static_cast<std::uint64_t>(id));
    char head[256];
    int n = std::snprintf(
        head, sizeof head,
        "{\"id\":%ld,\"account\":\"acct-%04u\",\"amount\":%u.%02u,\"currency\":\"%s\","
        "\"items\":[{\"sku\":\"SKU-%05u\",\"qty\":%u}],\"sent_us\":%" PRId64 ",\"note\":\"",
        id, static_cast<unsigned>(r % 5000), static_cast<unsigned>((r >> 13) % 10000),
        static_cast<unsigned>((r >> 27) % 100), currencies[(r >> 34) % 4],
        static_cast<unsigned>((r >> 36) % 100000), static_cast<unsigned>(1 + (r >> 53) % 5),
        sent_us);
    std::string body(head, static_cast<std::size_t>(n));
    if (version > 0)
        body.insert(1, "\"version\":" + std::to_string(version) + ",");
    static const std::string note = "order placed via web checkout, deliver to the back door; ";
    long room = size - static_cast<long>(body.size()) - 2;
    for (long i = 0; i < room; ++i)
        body += note[static_cast<std::size_t>(i) % note.size()];
    return body + "\"}";
}

// ---- publish ---------------------------------------------------------------------------------

int cmd_publish(Args& args) {
    auto url = amqp_url(args.text("amqp"));
    auto queues = split(args.text("queues"), ',');
    long start = args.number("start", 1), size = args.number("size", 200);
    auto seed = static_cast<std::uint64_t>(args.number("seed", 1));
    long window = std::max(1L, args.number("window", 2000));
    double rate = args.real("rate", 0), duration = args.real("duration", 0);
    long count = rate > 0 ? static_cast<long>(rate * duration) : args.number("count", -1);
    bool declare = args.flag("declare");
    long keys = args.number("keys", 0);
    args.check_all_used();
    if (count < 0)
        throw Usage{"publish needs --count, or --rate and --duration"};

    rmq2pg::AmqpSession session(url, 30, "rmq2pg-bench publish");
    if (declare)
        for (const auto& q : queues)
            session.declare_durable_queue(q);
    std::string body, message_id;
    long in_flight = 0;
    // Unpaced, confirms are awaited per window. Paced, the publisher must keep its schedule:
    // waiting for a confirm (a broker round trip with an fsync) would hold back the messages due
    // meanwhile and send them as one burst, and the burst's queueing would be measured as
    // latency. So it only reads the confirms that have arrived, and blocks only if
    // a whole second of messages is unconfirmed.
    long paced_window = std::max(window, static_cast<long>(rate));
    auto started = Clock::now();
    for (long i = 0; i < count; ++i) {
        if (rate > 0) {
            auto due = started + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(i) / rate));
            if (session.collect_confirms() >= static_cast<std::uint64_t>(paced_window))
                session.wait_for_confirms();
            // Sleeping per message (every 34 µs at 29 000/s) costs both sides a wake-up per
            // message; many producers send a few messages per millisecond instead.
            if (due - Clock::now() > std::chrono::milliseconds(1))
                std::this_thread::sleep_until(due);
        }
        long id = keys > 0 ? start + i % keys : start + i;
        body = order_body(id, seed, size, epoch_micros(), keys > 0 ? i + 1 : 0);
        message_id = "msg-" + std::to_string(id);
        rmq2pg::AmqpSession::OutgoingMessage message;
        message.body = body;
        message.message_id = message_id;
        message.timestamp = static_cast<std::int64_t>(epoch_now());
        for (const auto& q : queues) {
            session.publish("", q, message);
            if (rate <= 0 && ++in_flight >= window) {
                session.wait_for_confirms();
                in_flight = 0;
            }
        }
    }
    session.wait_for_confirms();
    double elapsed = seconds_since(started);
    print("published", static_cast<double>(count));
    print("publish_seconds", elapsed);
    print("publish_rate", elapsed > 0 ? static_cast<double>(count) / elapsed : 0);
    print("body_bytes", static_cast<double>(order_body(start, seed, size, epoch_micros()).size()));
    return 0;
}

// ---- drain -----------------------------------------------------------------------------------

int cmd_drain(Args& args) {
    auto url = amqp_url(args.text("amqp"));
    std::string queue = args.text("queue");
    long count = args.number("count", -1);
    auto prefetch = static_cast<std::uint16_t>(args.number("prefetch", 5000));
    long ack_every = std::max(1L, args.number("ack-every", 1000));
    long consumers = std::max(1L, args.number("consumers", 1));
    double timeout = args.real("timeout", 600);
    bool latency = args.flag("latency");
    long pause_ms = std::max(0L, args.number("pause-ms", 0));
    bool ack_late = args.flag("ack-late");
    bool priorities = args.flag("priorities");
    bool stream = args.flag("stream");
    args.check_all_used();
    if (count < 0)
        throw Usage{"drain needs --count"};

    // Connections and consumers are set up before the clock starts: the ceiling is the
    // delivery rate, not the login time.
    std::vector<std::unique_ptr<rmq2pg::AmqpSession>> sessions;
    for (long c = 0; c < consumers; ++c)
        sessions.push_back(std::make_unique<rmq2pg::AmqpSession>(url, 30, "rmq2pg-bench drain"));
    std::atomic<long> received{0};
    std::atomic<bool> failed{false};
    std::mutex error_lock;
    std::string error;
    std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(consumers));
    auto started = Clock::now();
    auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(timeout));
    std::vector<std::thread> threads;
    for (long c = 0; c < consumers; ++c) {
        threads.emplace_back([&, c] {
            try {
                auto& session = *sessions[static_cast<std::size_t>(c)];
                if (stream)
                    session.consume_stream(queue, prefetch,
                                           "rmq2pg-bench-drain-" + std::to_string(c),
                                           rmq2pg::AmqpSession::StreamOffset{});
                else
                    session.start_consuming(queue, prefetch,
                                            "rmq2pg-bench-drain-" + std::to_string(c),
                                            priorities ? std::optional<int>(-c) : std::nullopt);
                long mine = 0;
                std::uint64_t last_tag = 0, acked_tag = 0;
                while (received.load() < count && Clock::now() < deadline && !failed.load()) {
                    auto delivery = session.next_delivery(std::chrono::milliseconds(100));
                    if (!delivery)
                        continue;
                    last_tag = delivery->delivery_tag;
                    ++received;
                    if (latency) {
                        // The broker's share of the end-to-end latency: publish to delivery.
                        static constexpr std::string_view field = "\"sent_us\":";
                        auto at = delivery->body.find(field);
                        if (at != std::string_view::npos)
                            latencies[static_cast<std::size_t>(c)].push_back(
                                epoch_micros() -
                                std::strtoll(delivery->body.data() + at + field.size(), nullptr,
                                             10));
                    }
                    if (++mine % ack_every == 0) {
                        if (ack_late && pause_ms > 0)
                            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
                        session.ack_up_to(last_tag);
                        acked_tag = last_tag;
                        if (!ack_late && pause_ms > 0)
                            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
                    }
                }
                if (last_tag > acked_tag)
                    session.ack_up_to(last_tag);
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> guard(error_lock);
                error = e.what();
                failed = true;
            }
        });
    }
    for (auto& t : threads)
        t.join();
    double elapsed = seconds_since(started);
    // The final acks are asynchronous: closing the connections waits for the broker to take
    // them, so a later queue inspection sees them.
    sessions.clear();
    print("drained", static_cast<double>(received.load()));
    print("drain_seconds", elapsed);
    print("drain_rate", elapsed > 0 ? static_cast<double>(received.load()) / elapsed : 0);
    if (latency) {
        std::vector<std::int64_t> all;
        for (const auto& l : latencies)
            all.insert(all.end(), l.begin(), l.end());
        std::sort(all.begin(), all.end());
        // Nearest-rank percentiles, in milliseconds.
        auto at = [&](double q) {
            if (all.empty())
                return 0.0;
            auto i = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1) + 0.5);
            return static_cast<double>(all[i]) / 1000.0;
        };
        print("broker_latency_count", static_cast<double>(all.size()));
        print("broker_p50_ms", at(0.5));
        print("broker_p99_ms", at(0.99));
        print("broker_max_ms", at(1.0));
    }
    if (failed) {
        std::fprintf(stderr, "rmq2pg-bench drain: %s\n", error.c_str());
        return 1;
    }
    if (received.load() != count) {
        std::fprintf(stderr, "rmq2pg-bench drain: %ld of %ld messages within %.0f s\n",
                     received.load(), count, timeout);
        return 1;
    }
    return 0;
}

// ---- copy ------------------------------------------------------------------------------------

std::string quote_ident(const std::string& name) {
    std::string out = "\"";
    for (char c : name)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

// One COPY per chunk in its own transaction, `workers` connections in parallel: the daemon's
// transaction shape without the broker.
double timed_copy(const std::string& pg_url, const std::string& target,
                  const std::vector<std::string>& chunks, long workers) {
    std::vector<std::unique_ptr<pqxx::connection>> connections;
    for (long w = 0; w < workers; ++w)
        connections.push_back(std::make_unique<pqxx::connection>(pg_url));
    std::atomic<std::size_t> next{0};
    std::mutex error_lock;
    std::string error;
    auto started = Clock::now();
    std::vector<std::thread> threads;
    for (long w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
            try {
                auto& conn = *connections[static_cast<std::size_t>(w)];
                for (std::size_t i = next++; i < chunks.size(); i = next++) {
                    pqxx::work tx(conn, "bench-copy");
                    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
                        pqxx::tablewriter copy(tx, target);
#pragma GCC diagnostic pop
                        copy.write_raw_line(chunks[i]);
                        copy.complete();
                    }
                    tx.commit();
                }
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> guard(error_lock);
                error = e.what();
                next = chunks.size();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    double elapsed = seconds_since(started);
    if (!error.empty())
        throw std::runtime_error("COPY: " + error);
    return elapsed;
}

int cmd_copy(Args& args) {
    std::string pg_url = args.text("pg");
    std::string config_file = args.text("config");
    std::string table = args.text("table");
    long count = args.number("count", -1), start = args.number("start", 1);
    long size = args.number("size", 200);
    auto seed = static_cast<std::uint64_t>(args.number("seed", 1));
    long workers = std::max(1L, args.number("workers", 2));
    long batch = std::max(1L, args.number("batch", 1000));
    long max_bytes = std::max(1L, args.number("max-bytes", 4194304));
    std::string queue = args.optional_text("queue");
    args.check_all_used();
    if (count < 0)
        throw Usage{"copy needs --count"};

    // The daemon's own config and row mapper produce the rows, so the COPY ceiling writes
    // byte for byte what the daemon writes (only sent_us differs: it is the time of now).
    rmq2pg::Config config = rmq2pg::load_config_file(config_file);
    rmq2pg::PipelineConfig pipeline = config.pipelines.at(0);
    pipeline.table_name = table;
    pipeline.mode = rmq2pg::WriteMode::insert;
    if (queue.empty())
        queue = pipeline.queue;
    rmq2pg::PgConnectionSettings settings =
        rmq2pg::PgConnectionSettings::of(config, "rmq2pg-bench");
    settings.url = pg_url;
    rmq2pg::TableSchema schema = rmq2pg::check_pipeline_against_database(settings, pipeline);
    rmq2pg::RowMapper mapper(pipeline, schema);
    std::vector<std::string> chunks;
    std::string all, body, message_id;
    // A chunk closes like the daemon's batch: at --batch messages or once its bodies reach
    // --max-bytes, whichever comes first.
    long in_chunk = 0, chunk_bytes = 0;
    for (long i = 0; i < count; ++i) {
        if (chunks.empty() || in_chunk >= batch || chunk_bytes >= max_bytes) {
            chunks.emplace_back();
            in_chunk = chunk_bytes = 0;
        }
        long id = start + i;
        body = order_body(id, seed, size, epoch_micros());
        message_id = "msg-" + std::to_string(id);
        rmq2pg::Delivery d;
        d.body = body;
        d.routing_key = queue;
        d.message_id = message_id;
        d.content_type = "application/json";
        d.timestamp = static_cast<std::int64_t>(epoch_now());
        std::string& chunk = chunks.back();
        if (!chunk.empty())
            chunk += '\n';
        if (auto problem = mapper.append_row(d, chunk))
            throw std::runtime_error("order " + std::to_string(id) + " unmappable: " + *problem);
        ++in_chunk;
        chunk_bytes += static_cast<long>(body.size());
    }
    std::string columns;
    for (const auto& c : pipeline.columns)
        columns += (columns.empty() ? "" : ", ") + quote_ident(c.column);
    std::string target =
        quote_ident(pipeline.table_schema) + "." + quote_ident(table) + " (" + columns + ")";
    auto row_count = [&] {
        pqxx::connection conn(pg_url);
        pqxx::nontransaction tx(conn);
        return tx
            .exec("SELECT count(*) FROM " + quote_ident(pipeline.table_schema) + "." +
                  quote_ident(table))[0][0]
            .as<long>();
    };
    auto truncate = [&] {
        pqxx::connection conn(pg_url);
        pqxx::nontransaction tx(conn);
        tx.exec("TRUNCATE " + quote_ident(pipeline.table_schema) + "." + quote_ident(table));
    };

    double elapsed = timed_copy(pg_url, target, chunks, workers);
    long rows = row_count();
    print("copy_rows", static_cast<double>(rows));
    print("copy_seconds", elapsed);
    print("copy_rate", static_cast<double>(count) / elapsed);

    // For reference: the same rows as one COPY in one transaction (no per-batch commit).
    truncate();
    std::size_t bytes = 0;
    for (const auto& c : chunks)
        bytes += c.size() + 1;
    all.reserve(bytes);
    for (const auto& c : chunks)
        all += all.empty() ? c : "\n" + c;
    chunks.clear();
    chunks.push_back(std::move(all));
    double single = timed_copy(pg_url, target, chunks, 1);
    long single_rows = row_count();
    print("copy1_rows", static_cast<double>(single_rows));
    print("copy1_seconds", single);
    print("copy1_rate", static_cast<double>(count) / single);
    print("copy_bytes_per_row",
          static_cast<double>(bytes) / static_cast<double>(std::max(1L, count)));
    if (rows != count || single_rows != count) {
        std::fprintf(stderr, "rmq2pg-bench copy: %ld and %ld rows, expected %ld\n", rows,
                     single_rows, count);
        return 1;
    }
    return 0;
}

// ---- wait-rows -------------------------------------------------------------------------------

struct ProcessSample {
    double cpu_seconds = -1;
    long hwm_kib = -1, rss_kib = -1;
};

// utime + stime from /proc/PID/stat (fields 14 and 15, counted after the parenthesised name,
// which may itself hold spaces), VmHWM and VmRSS from /proc/PID/status.
ProcessSample sample_process(long pid) {
    ProcessSample s;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close != std::string::npos) {
        std::istringstream fields(text.substr(close + 2));
        std::vector<std::string> f;
        std::string field;
        while (fields >> field)
            f.push_back(field);
        if (f.size() > 12)
            s.cpu_seconds =
                (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0)
            s.hwm_kib = std::stol(line.substr(6));
        else if (line.rfind("VmRSS:", 0) == 0)
            s.rss_kib = std::stol(line.substr(6));
    }
    return s;
}

int cmd_wait_rows(Args& args) {
    std::string pg_url = args.text("pg");
    std::string table = args.text("table");
    long count = args.number("count", -1);
    std::string amqp = args.optional_text("amqp");
    std::string queue = args.optional_text("queue");
    long pid = args.number("pid", 0);
    double since = args.real("since", 0);
    double timeout = args.real("timeout", 600);
    std::string stream = args.optional_text("offset-of");
    args.check_all_used();
    if (count < 0)
        throw Usage{"wait-rows needs --count"};
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(timeout));
    auto expired = [&] { return Clock::now() >= deadline; };
    ProcessSample peak;

    // While the broker still has ready messages the count cannot be complete: poll the cheap
    // passive queue.declare first and leave the table scan (which competes with the daemon's
    // writes for the same cores) for the last stretch.
    if (!amqp.empty() && !queue.empty()) {
        rmq2pg::AmqpSession session(amqp_url(amqp), 30, "rmq2pg-bench wait-rows");
        while (!expired() && session.inspect_queue(queue).messages > 0) {
            if (pid > 0) {
                ProcessSample s = sample_process(pid);
                peak.rss_kib = std::max(peak.rss_kib, s.rss_kib);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    pqxx::connection conn(pg_url);
    // A stream's stored next offset is one row to read, where a count scans the whole table on
    // the cores the broker and the daemon need for the whole run: poll the offset first.
    if (!stream.empty()) {
        while (!expired()) {
            long next = 0;
            {
                pqxx::nontransaction tx(conn);
                auto r = tx.exec_params(
                    "SELECT coalesce(max(next_offset), 0) FROM rmq2pg_state.stream_offsets "
                    "WHERE stream = $1",
                    stream);
                next = r[0][0].as<long>();
            }
            if (next >= count)
                break;
            if (pid > 0) {
                if (kill(static_cast<pid_t>(pid), 0) != 0)
                    break;  // the count below reports what was written
                ProcessSample s = sample_process(pid);
                peak.rss_kib = std::max(peak.rss_kib, s.rss_kib);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    std::string qualified = quote_ident(table);
    long rows = 0;
    while (true) {
        {
            pqxx::nontransaction tx(conn);
            rows = tx.exec("SELECT count(*) FROM " + qualified)[0][0].as<long>();
        }
        if (rows >= count || expired())
            break;
        if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0) {
            std::fprintf(stderr, "rmq2pg-bench wait-rows: process %ld is gone\n", pid);
            break;
        }
        // Each count scans the whole table on the cores the broker and the daemon need; the
        // figures come from the rows' own clock, so a slow poll costs them nothing.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    double end = epoch_now();
    ProcessSample s;
    if (pid > 0)
        s = sample_process(pid);
    print("rows", static_cast<double>(rows));
    std::printf("end_epoch %.6f\n", end);
    if (since > 0) {
        // The span ends at the last row's own timestamp (received_at, set as it is written), not
        // when a poll happened to see it.
        pqxx::nontransaction tx(conn);
        double last = tx.exec("SELECT extract(epoch FROM max(received_at)) FROM " + qualified)[0][0]
                          .as<double>(0);
        double elapsed = last > since ? last - since : end - since;
        print("elapsed", elapsed);
        print("rate", static_cast<double>(rows) / elapsed);
        print("elapsed_polled", end - since);
    }
    if (pid > 0) {
        print("cpu_seconds", s.cpu_seconds);
        print("cpu_us_per_msg", rows > 0 ? s.cpu_seconds * 1e6 / static_cast<double>(rows) : 0);
        print("vm_hwm_kib", static_cast<double>(s.hwm_kib));
        print("vm_rss_kib", static_cast<double>(std::max(s.rss_kib, peak.rss_kib)));
    }
    if (rows != count) {
        std::fprintf(stderr, "rmq2pg-bench wait-rows: %ld rows in %s, expected %ld\n", rows,
                     table.c_str(), count);
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 64;
    }
    std::string command = argv[1];
    try {
        Args args(argc, argv, 2);
        if (command == "publish")
            return cmd_publish(args);
        if (command == "drain")
            return cmd_drain(args);
        if (command == "copy")
            return cmd_copy(args);
        if (command == "wait-rows")
            return cmd_wait_rows(args);
        throw Usage{"unknown command '" + command + "'"};
    } catch (const Usage& e) {
        std::fprintf(stderr, "rmq2pg-bench: %s\n%s", e.what.c_str(), kUsage);
        return 64;
    } catch (const rmq2pg::ConfigError& e) {
        for (const auto& p : e.problems())
            std::fprintf(stderr, "rmq2pg-bench: %s\n", p.c_str());
        return 78;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmq2pg-bench %s: %s\n", command.c_str(), e.what());
        return 1;
    }
}
