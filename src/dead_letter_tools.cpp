// `rmq2pg dead-letters` (dead_letter_tools.h). Design: a command consumes the dead-letter queue
// with manual acks and no prefetch limit, looks at as many messages as the queue held when it
// started, and acks only those it acted on (purged, or replayed once the broker confirmed the
// copy). Then it cancels its consumer and nacks (requeue) every other message, which the broker
// puts back where it was: classic queues requeue to the original position, quorum queues return
// them in their order ahead of the rest. Replays are published on a second
// connection (the consuming channel streams deliveries while confirms are awaited), each window
// of them confirmed before its dead letters are acked: a crash leaves a message in the
// dead-letter queue, or in both places, never in neither.
#include "dead_letter_tools.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include "amqp_session.h"
#include "cli.h"
#include "dead_letter_reasons.h"

namespace rmq2pg {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConsumersGoneWait = std::chrono::seconds(5);

// A queue whose depth was just measured hands its messages over within milliseconds; this long
// without one means another consumer took them (or the broker stalled): stop and say so.
constexpr auto kIdleLimit = std::chrono::seconds(5);
// Replays in flight before their confirms are awaited: enough to keep the broker busy, few
// enough that a crash leaves little in both places.
constexpr std::size_t kReplayWindow = 200;
// What `show` prints of a body without --full.
constexpr std::size_t kShowBodyBytes = 1024;
// What `list` prints of a reason group (a reason is at most 2 KiB, kReasonLimit).
constexpr std::size_t kListReasonBytes = 400;

// Headers rmq2pg added when it dead-lettered a message: a replay removes them, so the message
// goes back as it was first published (plus x-rmq2pg-replays).
const std::vector<std::string> kDeadLetterHeaders = {
    "x-rmq2pg-error", "x-rmq2pg-pipeline", "x-rmq2pg-table", "x-original-exchange",
    "x-original-routing-key", "x-rmq2pg-failed-at", "x-rmq2pg-original-headers",
    // Set by a quorum queue on what it delivered again (each list or show counts one).
    "x-delivery-count"};

// What rmq2pg's headers say about one dead letter.
struct DeadLetterFacts {
    std::string reason;  // "" when the message has no x-rmq2pg-error
    std::string failed_at;
    std::optional<std::string> exchange;
    std::optional<std::string> routing_key;
    long replays = 0;
};

DeadLetterFacts read_facts(const Delivery& delivery) {
    DeadLetterFacts facts;
    if (auto h = delivery.header("x-rmq2pg-error"))
        facts.reason = h->text;
    if (auto h = delivery.header("x-rmq2pg-failed-at"))
        facts.failed_at = h->text;
    if (auto h = delivery.header("x-original-exchange"))
        facts.exchange = h->text;
    if (auto h = delivery.header("x-original-routing-key"))
        facts.routing_key = h->text;
    if (auto h = delivery.header("x-rmq2pg-replays")) {
        try {
            facts.replays = std::stol(h->text);
        } catch (const std::exception&) {
            facts.replays = 0;  // not ours: count afresh
        }
    }
    return facts;
}

std::string group_of(const DeadLetterFacts& facts) {
    return facts.reason.empty() ? "(no x-rmq2pg-error header: not dead-lettered by rmq2pg)"
                                : reason_group(facts.reason);
}

// A long reason group as its head and tail: the tail holds the SQLSTATE.
std::string head_and_tail(std::string_view text, std::size_t limit) {
    if (text.size() <= limit)
        return std::string(text);
    std::size_t tail = limit / 4;
    std::size_t from = text.size() - tail;
    while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80)
        ++from;
    std::size_t head = limit - tail;
    while (head > 0 && (static_cast<unsigned char>(text[head]) & 0xC0) == 0x80)
        --head;
    return std::string(text.substr(0, head)) + "\xE2\x80\xA6" + std::string(text.substr(from));
}

std::string cut(std::string_view text, std::size_t limit) {
    if (text.size() <= limit)
        return std::string(text);
    while (limit > 0 && (static_cast<unsigned char>(text[limit]) & 0xC0) == 0x80)
        --limit;
    return std::string(text.substr(0, limit)) + "\xE2\x80\xA6 (" + std::to_string(text.size()) +
           " bytes)";
}

// A pipeline and the queue holding its dead letters.
struct DeadLetterQueue {
    const PipelineConfig* pipeline;
    std::string queue;
};

// The first broker of amqp.urls that answers.
std::unique_ptr<AmqpSession> connect(const Config& config, const std::string& name) {
    std::string errors;
    for (const auto& url : config.amqp_urls) {
        try {
            return std::make_unique<AmqpSession>(url, config.heartbeat_s, name);
        } catch (const AmqpError& e) {
            errors += std::string(errors.empty() ? "" : "; ") + e.what();
        }
    }
    throw AmqpError(AmqpError::Kind::connection, "no broker answered: " + errors);
}

struct Group {
    std::size_t count = 0;
    std::string first_failed_at, last_failed_at;
};

struct Tally {
    std::size_t depth = 0;    // ready messages when the command started
    std::size_t seen = 0;     // looked at
    std::size_t matched = 0;  // selected by --reason (and within --limit)
    std::size_t acted = 0;    // purged, or replayed and confirmed
    std::size_t not_replayable = 0;
    bool cut_short = false;  // the queue stopped delivering before `depth`
    std::map<std::string, Group> groups;
    std::map<std::string, std::size_t> destinations;  // replay: "exchange 'x' routing key 'k'"
};

void print_delivery(const DeadLetterQueue& target, const Delivery& delivery, std::size_t position,
                    const DeadLetterOptions& options) {
    std::printf("--- %s #%zu (pipeline '%s')\n", target.queue.c_str(), position,
                target.pipeline->name.c_str());
    for (const auto& [name, value] : delivery_headers(delivery))
        std::printf("%s: %s\n", name.c_str(), value.c_str());
    if (!delivery.message_id.empty())
        std::printf("message_id: %.*s\n", static_cast<int>(delivery.message_id.size()),
                    delivery.message_id.data());
    std::string body =
        options.full ? std::string(delivery.body) : cut(delivery.body, kShowBodyBytes);
    std::printf("body (%zu bytes): %s\n", delivery.body.size(), body.c_str());
}

void print_groups(const Tally& tally) {
    std::vector<std::pair<std::string, Group>> groups(tally.groups.begin(), tally.groups.end());
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
    std::printf("  %7s  %-24s  %-24s  %s\n", "count", "first failed-at", "last failed-at",
                "reason");
    for (const auto& [reason, group] : groups)
        std::printf("  %7zu  %-24s  %-24s  %s\n", group.count,
                    group.first_failed_at.empty() ? "-" : group.first_failed_at.c_str(),
                    group.last_failed_at.empty() ? "-" : group.last_failed_at.c_str(),
                    head_and_tail(reason, kListReasonBytes).c_str());
}

// Looks at the queue's messages in order and acts on the matching ones; everything not acked
// goes back in place when `consumer` closes (on return or on an exception).
void scan(const Config& config, const DeadLetterOptions& options, const DeadLetterQueue& target,
          Tally& tally) {
    using Action = DeadLetterOptions::Action;
    auto consumer = connect(config, "rmq2pg dead-letters " + target.queue);
    QueueState state = consumer->inspect_queue(target.queue);
    // A consumer seen here is most often the previous command's, still being removed (a quorum
    // queue returns its messages a moment after the close): give it a few seconds to go, since
    // what it holds would be missed.
    const auto consumers_deadline = Clock::now() + kConsumersGoneWait;
    while (state.consumers > 0 && Clock::now() < consumers_deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        state = consumer->inspect_queue(target.queue);
    }
    tally.depth = state.messages;
    if (state.consumers > 0)
        std::fprintf(stderr,
                     "rmq2pg: warning: '%s' has %u consumer(s): the messages they hold are not "
                     "seen\n",
                     target.queue.c_str(), state.consumers);
    if (tally.depth == 0)
        return;
    const bool replaying = options.action == Action::replay && !options.dry_run;
    std::unique_ptr<AmqpSession> publisher;
    if (replaying)
        publisher = connect(config, "rmq2pg dead-letters replay " + target.queue);
    // No prefetch limit: unmatched messages stay unacked while later ones are looked at.
    const std::string consumer_tag = "rmq2pg-dead-letters";
    consumer->start_consuming(target.queue, 0, consumer_tag);

    std::vector<std::uint64_t> unconfirmed;
    auto settle = [&] {
        if (unconfirmed.empty())
            return;
        publisher->wait_for_confirms();
        for (auto tag : unconfirmed)
            consumer->ack_one(tag);
        tally.acted += unconfirmed.size();
        unconfirmed.clear();
    };
    auto last_delivery = Clock::now();
    while (tally.seen < tally.depth && !(options.limit && tally.matched >= *options.limit)) {
        auto delivery = consumer->next_delivery(std::chrono::milliseconds(500));
        if (!delivery) {
            if (Clock::now() - last_delivery > kIdleLimit) {
                tally.cut_short = true;
                break;
            }
            continue;
        }
        last_delivery = Clock::now();
        ++tally.seen;
        DeadLetterFacts facts = read_facts(*delivery);
        if (!reason_matches(options.reason, facts.reason))
            continue;
        ++tally.matched;
        Group& group = tally.groups[group_of(facts)];
        ++group.count;
        if (!facts.failed_at.empty()) {
            if (group.first_failed_at.empty() || facts.failed_at < group.first_failed_at)
                group.first_failed_at = facts.failed_at;
            if (facts.failed_at > group.last_failed_at)
                group.last_failed_at = facts.failed_at;
        }
        switch (options.action) {
            case Action::list:
                break;
            case Action::show:
                print_delivery(target, *delivery, tally.seen, options);
                break;
            case Action::purge:
                consumer->ack_one(delivery->delivery_tag);
                ++tally.acted;
                break;
            case Action::replay: {
                if (!facts.routing_key) {
                    ++tally.not_replayable;
                    break;
                }
                std::string exchange = facts.exchange.value_or("");
                ++tally.destinations["exchange '" + exchange + "' routing key '" +
                                     *facts.routing_key + "'"];
                if (!replaying)
                    break;
                publisher->publish_copy(exchange, *facts.routing_key, *delivery, kDeadLetterHeaders,
                                        {{"x-rmq2pg-replays", std::to_string(facts.replays + 1)}});
                unconfirmed.push_back(delivery->delivery_tag);
                if (unconfirmed.size() >= kReplayWindow)
                    settle();
                break;
            }
        }
    }
    settle();
    // Explicitly, not by closing (see give_back_unacked); an exception above still closes the
    // connection, which requeues the rest all the same.
    consumer->give_back_unacked(consumer_tag);
}

int run_on(const Config& config, const DeadLetterOptions& options, const DeadLetterQueue& target) {
    using Action = DeadLetterOptions::Action;
    Tally tally;
    std::printf("pipeline '%s': dead-letter queue '%s'\n", target.pipeline->name.c_str(),
                target.queue.c_str());
    try {
        scan(config, options, target, tally);
    } catch (const AmqpError& e) {
        std::fflush(stdout);
        if (tally.seen == 0 && e.kind() == AmqpError::Kind::channel &&
            std::string_view(e.what()).find("404") != std::string_view::npos) {
            std::printf("  no dead letters: the queue does not exist (yet)\n");
            return kExitOk;
        }
        std::fprintf(stderr,
                     "rmq2pg: dead-letters %s on '%s' stopped after %zu of %zu messages: %s\n",
                     options.action == Action::replay  ? "replay"
                     : options.action == Action::purge ? "purge"
                                                       : "scan",
                     target.queue.c_str(), tally.seen, tally.depth, e.what());
        if (options.action == Action::replay)
            std::fprintf(stderr,
                         "rmq2pg: %zu replayed and removed; every other message is still in '%s' "
                         "(the last window of up to %zu may also have reached its destination)\n",
                         tally.acted, target.queue.c_str(), kReplayWindow);
        else if (options.action == Action::purge)
            std::fprintf(stderr, "rmq2pg: %zu purged; the rest are still in '%s'\n", tally.acted,
                         target.queue.c_str());
        return kExitFailure;
    }
    if (tally.depth == 0) {
        std::printf("  no dead letters\n");
        return kExitOk;
    }
    std::printf("  %zu message(s) in the queue, %zu looked at, %zu matching%s%s\n", tally.depth,
                tally.seen, tally.matched, options.reason.empty() ? "" : " --reason ",
                options.reason.c_str());
    if (tally.matched > 0 && options.action != Action::show)
        print_groups(tally);
    switch (options.action) {
        case Action::list:
        case Action::show:
            std::printf("  nothing taken: every message is still in '%s', in its order\n",
                        target.queue.c_str());
            break;
        case Action::purge:
            std::printf("  purged %zu; the other %zu are still in '%s', in their order\n",
                        tally.acted, tally.depth - tally.acted, target.queue.c_str());
            break;
        case Action::replay:
            for (const auto& [destination, count] : tally.destinations)
                std::printf("  %s %zu to %s\n", options.dry_run ? "would replay" : "replayed",
                            count, destination.c_str());
            if (tally.not_replayable > 0)
                std::printf(
                    "  %zu left in place: no x-original-routing-key header says where "
                    "they came from\n",
                    tally.not_replayable);
            std::printf("  %zu still in '%s', in their order\n", tally.depth - tally.acted,
                        target.queue.c_str());
            break;
    }
    if (tally.cut_short) {
        std::fprintf(stderr,
                     "rmq2pg: warning: '%s' delivered %zu of its %zu messages and then nothing "
                     "for %lld s (another consumer?): the rest were not looked at\n",
                     target.queue.c_str(), tally.seen, tally.depth,
                     static_cast<long long>(kIdleLimit.count()));
        return kExitFailure;
    }
    return kExitOk;
}

}  // namespace

std::optional<std::string> dead_letter_queue_of(const Config& config,
                                                const PipelineConfig& pipeline, std::string& why) {
    if (pipeline.on_error != OnError::dead_letter) {
        why = std::string("on_error is '") + to_string(pipeline.on_error) +
              "': rmq2pg does not dead-letter this pipeline's messages (with 'reject' the "
              "broker does, to the queue's x-dead-letter-exchange); name that queue with --queue";
        return std::nullopt;
    }
    if (pipeline.declares_dead_letter_queue())
        return pipeline.dead_letter_routing_key();
    // The user's own exchange: a queue the config declares bound to it with the key we publish.
    const std::string key = pipeline.dead_letter_routing_key();
    for (const auto& other : config.pipelines) {
        if (!other.declare)
            continue;
        for (const auto& binding : other.declare->bindings)
            if (binding.exchange == pipeline.dead_letter.exchange &&
                (binding.routing_key == key || binding.routing_key == "#"))
                return other.queue;
    }
    why = "dead_letter.exchange '" + pipeline.dead_letter.exchange + "' routes key '" + key +
          "' to a queue the config does not declare: name it with --queue";
    return std::nullopt;
}

std::optional<std::string> parse_dead_letter_options(const std::vector<std::string>& args,
                                                     DeadLetterOptions& out) {
    using Action = DeadLetterOptions::Action;
    if (args.empty())
        return "dead-letters needs list, show, replay or purge";
    const std::string& action = args[0];
    if (action == "list")
        out.action = Action::list;
    else if (action == "show")
        out.action = Action::show;
    else if (action == "replay")
        out.action = Action::replay;
    else if (action == "purge")
        out.action = Action::purge;
    else
        return "unknown dead-letters command '" + action + "' (list, show, replay, purge)";
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= args.size())
                return false;
            into = args[++i];
            return true;
        };
        std::string text;
        if (arg == "--pipeline") {
            if (!value(out.pipeline))
                return std::string("--pipeline needs a name");
        } else if (arg == "--reason") {
            if (!value(out.reason) || out.reason.empty())
                return std::string("--reason needs a text");
        } else if (arg == "--queue") {
            if (!value(out.queue) || out.queue.empty())
                return std::string("--queue needs a name");
        } else if (arg == "--limit") {
            if (!value(text) || text.empty() ||
                text.find_first_not_of("0123456789") != std::string::npos || text.size() > 12)
                return "--limit needs a positive number, not '" + text + "'";
            out.limit = std::stoull(text);
            if (*out.limit == 0)
                return std::string("--limit needs a positive number, not '0'");
        } else if (arg == "--dry-run" && out.action == Action::replay) {
            out.dry_run = true;
        } else if (arg == "--full" && out.action == Action::show) {
            out.full = true;
        } else {
            return "unknown argument '" + arg + "' for dead-letters " + action;
        }
    }
    if (out.action == Action::show && !out.limit)
        out.limit = 10;  // a screenful; --limit asks for more
    if (!out.queue.empty() && out.pipeline.empty())
        return std::string("--queue needs --pipeline (whose dead letters it holds)");
    return std::nullopt;
}

int dead_letters_command(const Config& config, const DeadLetterOptions& options) {
    std::vector<DeadLetterQueue> targets;
    int code = kExitOk;
    for (const auto& pipeline : config.pipelines) {
        if (!options.pipeline.empty() && pipeline.name != options.pipeline)
            continue;
        if (!options.queue.empty()) {
            targets.push_back({&pipeline, options.queue});
            continue;
        }
        std::string why;
        if (auto queue = dead_letter_queue_of(config, pipeline, why)) {
            targets.push_back({&pipeline, *queue});
        } else if (!options.pipeline.empty()) {
            std::fprintf(stderr, "rmq2pg: pipeline '%s': %s\n", pipeline.name.c_str(), why.c_str());
            return kExitConfig;
        } else {
            std::fprintf(stderr, "rmq2pg: note: pipeline '%s' skipped: %s\n", pipeline.name.c_str(),
                         why.c_str());
        }
    }
    if (!options.pipeline.empty() && targets.empty()) {
        std::fprintf(stderr, "rmq2pg: %s has no pipeline '%s'\n", config.source_file.c_str(),
                     options.pipeline.c_str());
        return kExitConfig;
    }
    for (const auto& target : targets)
        code = std::max(code, run_on(config, options, target));
    return code;
}

}  // namespace rmq2pg
