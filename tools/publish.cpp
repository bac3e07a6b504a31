// rmq2pg-publish: publishes JSON lines (from a file or stdin) or generated orders to RabbitMQ
// with publisher confirms, for the demo, the tests and users who need to replay data.
// Exit status 0 means every message was confirmed by the broker.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "amqp_session.h"

namespace {

constexpr const char* kUsage =
    "usage: rmq2pg-publish --url AMQP_URL (--queue Q | --exchange X --routing-key K) [options]\n"
    "  --file PATH            JSON lines to publish (default: stdin)\n"
    "  --generate orders      publish generated order messages instead (with --count)\n"
    "  --body-file PATH       publish this file's bytes as one message (repeatable; binary ok)\n"
    "  --delimited-file PATH  publish each body of PATH, each preceded by its length as a\n"
    "                         varint (protobuf's writeDelimitedTo format)\n"
    "  --content-encoding E   content_encoding of every message (gzip, deflate, ...)\n"
    "  --content-type T       content_type of every message (default application/json)\n"
    "  --count N              how many to generate (default 1000)\n"
    "  --start N              first order id (default 1)\n"
    "  --seed N               generator seed (default 1)\n"
    "  --poison-percent P     make P%% of generated messages unwritable (default 0)\n"
    "  --pad BYTES            pad generated bodies with a note of this many bytes\n"
    "  --message-id-prefix S  message_id = S + sequence number (default 'msg-')\n"
    "  --declare-queue        declare --queue as a durable queue first\n"
    "  --declare-stream       declare --queue as a stream first\n"
    "  --window N             unconfirmed messages in flight (default 2000)\n"
    "  --rate N               at most N messages per second (default: as fast as confirmed)\n"
    "  --stats QUEUE          print '<messages> <consumers>' of QUEUE and exit\n"
    "  --drain QUEUE          consume and ack every message of QUEUE (until 2 s idle), printing\n"
    "                         one line each: the --headers values then the body, tab-separated\n"
    "  --headers A,B,...      header names --drain prints (missing ones print as '-')\n"
    "  --header NAME=VALUE    a string header on every published message (repeatable)\n"
    "  --dead-letter-probe B  take one message from --queue and publish it to '<queue>.dead' as\n"
    "                         the daemon dead-letters, twice on one connection: with a B-byte\n"
    "                         x-rmq2pg-error header, then a short one; print what became of each\n"
    "  --tls-ca-file PATH     amqps://: PEM CAs the broker's certificate must chain to\n"
    "                         (default: the system store)\n"
    "  --tls-cert-file PATH   amqps://: client certificate (PEM), with --tls-key-file\n"
    "  --tls-key-file PATH    its private key (PEM, unencrypted); errors name the daemon's\n"
    "                         amqp.tls keys, which these mirror\n";

struct Options {
    std::string url, queue, exchange, routing_key, file, generate,
        prefix = "msg-", stats, drain, headers, content_encoding, content_type = "application/json";
    std::vector<std::string> body_files;
    std::string delimited_file;
    rmq2pg::AmqpTlsOptions tls;  // the same meaning as the daemon's amqp.tls keys
    long count = 1000, start = 1, seed = 1, pad = 0, window = 2000, rate = 0, probe = 0;
    double poison_percent = 0;
    bool declare = false;
    bool declare_stream = false;
    std::vector<std::pair<std::string, std::string>> published_headers;
};

// The kinds of poison the fault tests need: each is refused at a different layer.
std::string poison_order(long id, std::mt19937_64& random) {
    switch (random() % 4) {
        case 0:
            return "{\"id\": " + std::to_string(id) + ", \"account\": \"acct-1\", broken";
        case 1:
            return "{\"id\": " + std::to_string(id) +
                   ", \"account\": \"acct-1\", \"amount\": \"not-a-number\"}";
        case 2:
            return "{\"id\": " + std::to_string(id) + ", \"amount\": 1.5}";  // no account
        default:
            return "{\"id\": " + std::to_string(id) + ", \"account\": \"" + std::string(200, 'x') +
                   "\", \"amount\": 2.5}";  // longer than varchar(64)
    }
}

std::string order(long id, std::mt19937_64& random, long pad) {
    static const char* currencies[] = {"EUR", "USD", "GBP", "CHF"};
    long cents = static_cast<long>(random() % 1000000);
    char amount[32];
    std::snprintf(amount, sizeof amount, "%ld.%02ld", cents / 100, cents % 100);
    std::string body = "{\"id\": " + std::to_string(id) + ", \"account\": \"acct-" +
                       std::to_string(random() % 5000) + "\", \"amount\": " + amount +
                       ", \"currency\": \"" + currencies[random() % 4] +
                       "\", \"items\": [{\"sku\": \"SKU-" + std::to_string(random() % 100000) +
                       "\", \"qty\": " + std::to_string(1 + random() % 5) +
                       "}], \"note\": \"order placed via web checkout\"";
    if (pad > 0)
        body += ", \"pad\": \"" + std::string(static_cast<std::size_t>(pad), 'p') + "\"";
    return body + "}";
}

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](std::string& target) {
            if (i + 1 >= argc)
                return false;
            target = argv[++i];
            return true;
        };
        auto number = [&](long& target) {
            std::string text;
            if (!value(text))
                return false;
            target = std::stol(text);
            return true;
        };
        bool ok = true;
        if (a == "--url")
            ok = value(o.url);
        else if (a == "--queue")
            ok = value(o.queue);
        else if (a == "--exchange")
            ok = value(o.exchange);
        else if (a == "--routing-key")
            ok = value(o.routing_key);
        else if (a == "--file")
            ok = value(o.file);
        else if (a == "--body-file")
            ok = value(o.body_files.emplace_back());
        else if (a == "--delimited-file")
            ok = value(o.delimited_file);
        else if (a == "--content-encoding")
            ok = value(o.content_encoding);
        else if (a == "--content-type")
            ok = value(o.content_type);
        else if (a == "--generate")
            ok = value(o.generate);
        else if (a == "--message-id-prefix")
            ok = value(o.prefix);
        else if (a == "--stats")
            ok = value(o.stats);
        else if (a == "--drain")
            ok = value(o.drain);
        else if (a == "--headers")
            ok = value(o.headers);
        else if (a == "--header") {
            std::string text;
            ok = value(text);
            std::size_t equals = text.find('=');
            ok = ok && equals != std::string::npos && equals > 0;
            if (ok)
                o.published_headers.emplace_back(text.substr(0, equals), text.substr(equals + 1));
        } else if (a == "--count")
            ok = number(o.count);
        else if (a == "--start")
            ok = number(o.start);
        else if (a == "--seed")
            ok = number(o.seed);
        else if (a == "--pad")
            ok = number(o.pad);
        else if (a == "--dead-letter-probe")
            ok = number(o.probe);
        else if (a == "--window")
            ok = number(o.window);
        else if (a == "--rate")
            ok = number(o.rate);
        else if (a == "--poison-percent") {
            std::string text;
            ok = value(text);
            if (ok)
                o.poison_percent = std::stod(text);
        } else if (a == "--tls-ca-file")
            ok = value(o.tls.ca_file);
        else if (a == "--tls-cert-file")
            ok = value(o.tls.cert_file);
        else if (a == "--tls-key-file")
            ok = value(o.tls.key_file);
        else if (a == "--declare-queue")
            o.declare = true;
        else if (a == "--declare-stream")
            o.declare_stream = true;
        else
            ok = false;
        if (!ok) {
            std::fprintf(stderr, "rmq2pg-publish: bad argument '%s'\n%s", a.c_str(), kUsage);
            return false;
        }
    }
    if (o.url.empty() ||
        (o.stats.empty() && o.drain.empty() && o.queue.empty() && o.routing_key.empty())) {
        std::fputs(kUsage, stderr);
        return false;
    }
    if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
        std::fprintf(stderr, "rmq2pg-publish: --tls-cert-file and --tls-key-file go together\n");
        return false;
    }
    if (!o.generate.empty() && o.generate != "orders") {
        std::fprintf(stderr, "rmq2pg-publish: --generate knows only 'orders'\n");
        return false;
    }
    return true;
}

std::string one_line(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c == '\t' || c == '\n')
            c = ' ';
    return out;
}

int drain(rmq2pg::AmqpSession& session, const Options& o) {
    std::vector<std::string> names;
    for (std::size_t start = 0; start < o.headers.size();) {
        std::size_t comma = o.headers.find(',', start);
        if (comma == std::string::npos)
            comma = o.headers.size();
        names.push_back(o.headers.substr(start, comma - start));
        start = comma + 1;
    }
    session.start_consuming(o.drain, 1000, "rmq2pg-publish-drain");
    long drained = 0;
    while (auto delivery = session.next_delivery(std::chrono::seconds(2))) {
        std::string line;
        for (const auto& name : names) {
            auto value = delivery->header(name);
            line += (value ? one_line(value->text) : "-") + "\t";
        }
        std::printf("%s%s\n", line.c_str(), one_line(delivery->body).c_str());
        session.ack_up_to(delivery->delivery_tag);
        ++drained;
    }
    std::fprintf(stderr, "drained %ld messages from '%s'\n", drained, o.drain.c_str());
    return 0;
}

const char* kind_name(rmq2pg::AmqpError::Kind kind) {
    using K = rmq2pg::AmqpError::Kind;
    switch (kind) {
        case K::connection:
            return "connection";
        case K::channel:
            return "channel";
        case K::refused:
            return "refused";
        case K::publish:
            return "publish";
        case K::conflict:
            return "conflict";
        case K::unpublishable:
            return "unpublishable";
    }
    return "?";
}

// --dead-letter-probe: what the daemon does with a poison message whose reason makes its headers
// larger than a frame. Prints "oversized: <outcome>" and "normal: <outcome>", where an outcome
// is "confirmed" or "<AmqpError kind>: <text>"; the integration test judges them.
int dead_letter_probe(rmq2pg::AmqpSession& session, const Options& o) {
    const std::string dead = o.queue + ".dead";
    session.declare_durable_queue(dead);
    session.start_consuming(o.queue, 1, "rmq2pg-publish-probe");
    auto delivery = session.next_delivery(std::chrono::seconds(5));
    if (!delivery) {
        std::fprintf(stderr, "rmq2pg-publish: no message in '%s' within 5 s\n", o.queue.c_str());
        return 1;
    }
    auto attempt = [&](const char* label, std::size_t reason_bytes) {
        std::vector<std::pair<std::string, std::string>> headers = {
            {"x-rmq2pg-error", std::string(reason_bytes, 'r')}};
        try {
            session.publish_confirmed("", dead, *delivery, headers);
            std::printf("%s: confirmed\n", label);
        } catch (const rmq2pg::AmqpError& e) {
            std::printf("%s: %s: %s\n", label, kind_name(e.kind()), e.what());
        }
    };
    attempt("oversized", static_cast<std::size_t>(o.probe));
    attempt("normal", 5);
    session.ack_up_to(delivery->delivery_tag);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse(argc, argv, o))
        return 64;
    std::string error;
    auto url = rmq2pg::parse_amqp_url(o.url, error);
    if (!url) {
        std::fprintf(stderr, "rmq2pg-publish: %s: %s\n", rmq2pg::mask_url_password(o.url).c_str(),
                     error.c_str());
        return 64;
    }
    bool tls_given = !o.tls.ca_file.empty() || !o.tls.cert_file.empty();
    if (tls_given && !url->tls) {
        std::fprintf(stderr, "rmq2pg-publish: --tls-* options need an amqps:// URL, got %s\n",
                     url->masked().c_str());
        return 64;
    }
    url->tls_options = o.tls;
    try {
        rmq2pg::AmqpSession session(*url, 30, "rmq2pg-publish");
        if (!o.stats.empty()) {
            auto state = session.inspect_queue(o.stats);
            std::printf("%u %u\n", state.messages, state.consumers);
            return 0;
        }
        if (!o.drain.empty())
            return drain(session, o);
        if (o.probe > 0)
            return dead_letter_probe(session, o);
        if (o.declare)
            session.declare_durable_queue(o.queue);
        if (o.declare_stream) {
            rmq2pg::QueueDeclaration stream;
            stream.type = "stream";
            session.declare_queue(o.queue, stream);
        }
        std::string routing_key = o.routing_key.empty() ? o.queue : o.routing_key;
        std::mt19937_64 random(static_cast<std::uint64_t>(o.seed));
        std::uniform_real_distribution<double> percent(0, 100);
        long sent = 0, poison = 0;
        std::string body, message_id;
        auto started = std::chrono::steady_clock::now();
        auto send = [&](const std::string& payload) {
            message_id = o.prefix + std::to_string(o.start + sent);
            rmq2pg::AmqpSession::OutgoingMessage message;
            message.body = payload;
            message.message_id = message_id;
            message.headers = o.published_headers;
            message.content_encoding = o.content_encoding;
            message.content_type = o.content_type;
            message.timestamp = std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
            session.publish(o.exchange, routing_key, message);
            if (o.rate > 0) {
                // Pace to the offered rate: sleep until this message's slot.
                auto due = started + std::chrono::microseconds(sent * 1000000 / o.rate);
                if (due > std::chrono::steady_clock::now()) {
                    session.wait_for_confirms();
                    std::this_thread::sleep_until(due);
                }
            }
            if (++sent % o.window == 0)
                session.wait_for_confirms();
        };
        if (!o.delimited_file.empty()) {
            std::ifstream file(o.delimited_file, std::ios::binary);
            if (!file) {
                std::fprintf(stderr, "rmq2pg-publish: cannot read %s: %s\n",
                             o.delimited_file.c_str(), std::strerror(errno));
                return 66;
            }
            for (;;) {
                std::uint64_t length = 0;
                int shift = 0, c = 0;
                while ((c = file.get()) != EOF && shift < 64) {
                    length |= static_cast<std::uint64_t>(c & 0x7f) << shift;
                    shift += 7;
                    if ((c & 0x80) == 0)
                        break;
                }
                if (c == EOF)
                    break;
                body.resize(length);
                if (!file.read(body.data(), static_cast<std::streamsize>(length))) {
                    std::fprintf(stderr, "rmq2pg-publish: %s is cut short\n",
                                 o.delimited_file.c_str());
                    return 65;
                }
                send(body);
            }
        } else if (!o.body_files.empty()) {
            for (const auto& path : o.body_files) {
                std::ifstream file(path, std::ios::binary);
                if (!file) {
                    std::fprintf(stderr, "rmq2pg-publish: cannot read %s: %s\n", path.c_str(),
                                 std::strerror(errno));
                    return 66;
                }
                body.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
                send(body);
            }
        } else if (!o.generate.empty()) {
            for (long i = 0; i < o.count; ++i) {
                long id = o.start + i;
                if (o.poison_percent > 0 && percent(random) < o.poison_percent) {
                    body = poison_order(id, random);
                    ++poison;
                } else {
                    body = order(id, random, o.pad);
                }
                send(body);
            }
        } else {
            std::ifstream file;
            if (!o.file.empty()) {
                file.open(o.file);
                if (!file) {
                    std::fprintf(stderr, "rmq2pg-publish: cannot read %s: %s\n", o.file.c_str(),
                                 std::strerror(errno));
                    return 66;
                }
            }
            std::istream& in = o.file.empty() ? std::cin : file;
            while (std::getline(in, body)) {
                if (body.empty())
                    continue;
                send(body);
            }
        }
        session.wait_for_confirms();
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::fprintf(stderr,
                     "published %ld messages (%ld poison) to '%s' in %.2f s (%.0f/s), all "
                     "confirmed\n",
                     sent, poison, routing_key.c_str(), seconds,
                     seconds > 0 ? static_cast<double>(sent) / seconds : 0);
        std::printf("%ld\n", sent);
        return 0;
    } catch (const rmq2pg::AmqpError& e) {
        std::fprintf(stderr, "rmq2pg-publish: %s\n", e.what());
        return 1;
    }
}
