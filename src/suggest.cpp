// `rmq2pg suggest` (suggest.h). Design: the table is read as the writer reads it
// (check_pipeline_against_database), messages are peeked at like dead letters are (manual acks,
// then the connection closes and the broker puts them back in order), each column is matched to
// a top-level field, a header or an AMQP property of the same folded name, and every proposed
// column is then tried on every sample with the daemon's own RowMapper and with PostgreSQL's
// input function of the column's type: what would fail at run time is flagged now.
#include "suggest.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "amqp_session.h"
#include "cli.h"
#include "json_fields.h"
#include "json_pointer.h"
#include "pg_value_probe.h"
#include "pg_writer.h"
#include "protobuf_decoder.h"
#include "row_mapper.h"
#include "write_error.h"

namespace rmq2pg {

namespace {

using Clock = std::chrono::steady_clock;

// A queue that holds messages hands the first ones over within milliseconds; an empty or
// drained one is not waited on longer than this.
constexpr auto kPeekIdle = std::chrono::seconds(3);
// Misfits listed per column: enough to see the pattern.
constexpr std::size_t kMisfitsShown = 3;

// What the samples say about one top-level field or header.
struct Seen {
    std::string name;
    std::size_t messages = 0;  // samples that have it
    std::set<std::string> kinds;
    bool used = false;
};

// The AMQP properties a column may be named after.
const std::pair<const char*, ColumnSource::Kind> kProperties[] = {
    {"routing_key", ColumnSource::Kind::routing_key},
    {"exchange", ColumnSource::Kind::exchange},
    {"message_id", ColumnSource::Kind::message_id},
    {"content_type", ColumnSource::Kind::content_type},
    {"timestamp", ColumnSource::Kind::timestamp},
    {"body", ColumnSource::Kind::body},
};

// A YAML scalar as written: plain when safe, else double-quoted.
std::string yaml_scalar(const std::string& text) {
    bool plain = !text.empty();
    for (char c : text)
        plain = plain && (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
                          c == '/' || c == '.' || c == '-' || c == '$');
    if (plain && text[0] != '-' && text.find("${") == std::string::npos)
        return text;
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

// COPY text of one field back to the value (nullopt for \N).
std::optional<std::string> copy_unescape(const std::string& field) {
    if (field == "\\N")
        return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] != '\\' || i + 1 == field.size()) {
            out += field[i];
            continue;
        }
        char next = field[++i];
        out += next == 't' ? '\t' : next == 'n' ? '\n' : next == 'r' ? '\r' : next;
    }
    return out;
}

std::unique_ptr<AmqpSession> connect(const Config& config) {
    std::string errors;
    for (const auto& url : config.amqp_urls) {
        try {
            return std::make_unique<AmqpSession>(url, config.heartbeat_s, "rmq2pg suggest");
        } catch (const AmqpError& e) {
            errors += std::string(errors.empty() ? "" : "; ") + e.what();
        }
    }
    throw AmqpError(AmqpError::Kind::connection, "no broker answered: " + errors);
}

// Up to `limit` messages of `queue`, left in place: nacked with requeue, they go back in order.
std::vector<Delivery> peek(const Config& config, const std::string& queue, std::size_t limit) {
    auto session = connect(config);
    QueueState state = session->inspect_queue(queue);
    std::size_t wanted = std::min<std::size_t>(limit, state.messages);
    std::vector<Delivery> out;
    if (wanted == 0)
        return out;
    // basic.qos counts to 65535; suggest looks at far fewer.
    session->start_consuming(
        queue, static_cast<std::uint16_t>(std::min<std::size_t>(wanted, 65535)), "rmq2pg-suggest");
    auto last = Clock::now();
    while (out.size() < wanted && Clock::now() - last < kPeekIdle) {
        if (auto d = session->next_delivery(std::chrono::milliseconds(500))) {
            out.push_back(std::move(*d));
            last = Clock::now();
        }
    }
    session->give_back_unacked("rmq2pg-suggest");
    return out;
}

// The other top-level sections of the config file, as written (${VAR} references and
// password files kept): the suggestion is a whole config that --check-config can read.
std::string sections_besides_pipelines(const std::string& path) {
    std::ifstream in(path);
    std::string line, out;
    bool skipping = false;
    while (std::getline(in, line)) {
        bool top_level = !line.empty() && line[0] != ' ' && line[0] != '#' && line[0] != '\t';
        if (top_level)
            skipping = line.rfind("pipelines:", 0) == 0;
        if (!skipping)
            out += line + "\n";
    }
    return out;
}

struct ColumnPlan {
    const ColumnInfo* column = nullptr;
    std::optional<ColumnSource> source;
    std::string source_text;
    std::string note;                  // where the value comes from, what the samples hold
    std::vector<std::string> misfits;  // values that would not convert
    std::size_t misfit_count = 0;
};

}  // namespace

std::string fold_name(const std::string& name) {
    std::string out;
    for (char c : name)
        if (c != '_' && c != '-')
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::optional<std::string> parse_suggest_options(const std::vector<std::string>& args,
                                                 bool have_config, SuggestOptions& out) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        std::string* into = arg == "--pipeline"       ? &out.pipeline
                            : arg == "--amqp-url"     ? &out.amqp_url
                            : arg == "--postgres-url" ? &out.postgres_url
                            : arg == "--queue"        ? &out.queue
                            : arg == "--table"        ? &out.table
                                                      : nullptr;
        if (into != nullptr) {
            if (i + 1 >= args.size() || args[i + 1].empty())
                return arg + " needs a value";
            *into = args[++i];
        } else if (arg == "--samples") {
            std::string text = i + 1 < args.size() ? args[++i] : "";
            if (text.empty() || text.size() > 6 ||
                text.find_first_not_of("0123456789") != std::string::npos || text == "0")
                return "--samples needs a number from 1 to 999999, not '" + text + "'";
            out.samples = std::stoul(text);
        } else {
            return "unknown argument '" + arg + "' for suggest";
        }
    }
    if (have_config) {
        if (out.pipeline.empty())
            return std::string("suggest --config FILE needs --pipeline P");
        if (!out.amqp_url.empty() || !out.postgres_url.empty() || !out.table.empty())
            return std::string("suggest --config takes the servers and the table from the file");
    } else if (out.amqp_url.empty() || out.postgres_url.empty() || out.queue.empty() ||
               out.table.empty()) {
        return std::string(
            "suggest needs --config FILE --pipeline P, or --amqp-url, --postgres-url, --queue "
            "and --table");
    }
    return std::nullopt;
}

int suggest_command(const Config* given, const SuggestOptions& options) {
    // The servers and the pipeline looked at.
    Config made;
    PipelineConfig pipeline;
    if (given != nullptr) {
        auto it = std::find_if(given->pipelines.begin(), given->pipelines.end(),
                               [&](const PipelineConfig& p) { return p.name == options.pipeline; });
        if (it == given->pipelines.end()) {
            std::fprintf(stderr, "rmq2pg: %s has no pipeline '%s'\n", given->source_file.c_str(),
                         options.pipeline.c_str());
            return kExitConfig;
        }
        pipeline = *it;
        if (!options.queue.empty())
            pipeline.queue = options.queue;
    } else {
        std::string error;
        auto url = parse_amqp_url(options.amqp_url, error);
        if (!url) {
            std::fprintf(stderr, "rmq2pg: --amqp-url: %s\n", error.c_str());
            return kExitUsage;
        }
        made.amqp_urls.push_back(*url);
        made.postgres_url = options.postgres_url;
        pipeline.queue = options.queue;
        auto dot = options.table.find('.');
        pipeline.table_schema = dot == std::string::npos ? "public" : options.table.substr(0, dot);
        pipeline.table_name =
            dot == std::string::npos ? options.table : options.table.substr(dot + 1);
        pipeline.name = pipeline.table_name;
    }
    const Config& config = given != nullptr ? *given : made;
    PgConnectionSettings pg = PgConnectionSettings::of(config, "rmq2pg suggest");

    // The table, as the writer reads it (no mapping yet: nothing to check it against).
    PipelineConfig bare = pipeline;
    bare.columns.clear();
    bare.routes.clear();
    bare.mode = WriteMode::insert;
    bare.dedupe.clear();
    bare.delete_when.reset();
    TableSchema table;
    std::vector<Delivery> samples;
    try {
        table = check_pipeline_against_database(pg, bare);
        samples = peek(config, pipeline.queue, options.samples);
    } catch (const WriteError& e) {
        std::fprintf(stderr, "rmq2pg: suggest: %s\n", e.what());
        return e.kind() == WriteError::Kind::schema ? kExitConfig : kExitFailure;
    } catch (const AmqpError& e) {
        std::fprintf(stderr, "rmq2pg: suggest: queue '%s': %s\n", pipeline.queue.c_str(), e.what());
        return kExitFailure;
    }

    // format: protobuf: the samples are read as the daemon reads them, as their canonical JSON
    // form (a body that is not the message stays as it is: "not JSON objects" below).
    std::vector<std::string> decoded(samples.size());
    if (pipeline.format == MessageFormat::protobuf && pipeline.protobuf.schema) {
        ProtobufDecoder decoder(pipeline.protobuf.schema);
        for (std::size_t i = 0; i < samples.size(); ++i)
            if (!decoder.to_json(samples[i].body, decoded[i]))
                samples[i].body = decoded[i];
    }

    // What the samples carry.
    std::vector<Seen> fields, headers;
    auto note_seen = [](std::vector<Seen>& list, const std::string& name, const std::string& kind) {
        auto it =
            std::find_if(list.begin(), list.end(), [&](const Seen& s) { return s.name == name; });
        if (it == list.end()) {
            Seen fresh;
            fresh.name = name;
            list.push_back(std::move(fresh));
            it = list.end() - 1;
        }
        ++it->messages;
        it->kinds.insert(kind);
    };
    std::size_t not_json = 0;
    for (const auto& d : samples) {
        if (auto f = top_level_fields(d.body)) {
            for (const auto& field : *f)
                note_seen(fields, field.name, field.kind);
        } else {
            ++not_json;
        }
        for (const auto& [name, value] : delivery_headers(d))
            note_seen(headers, name, "header");
    }

    // Each column's source: a field, else a header, else an AMQP property of the same name.
    std::vector<ColumnPlan> plans;
    for (const auto& column : table.columns) {
        ColumnPlan plan;
        plan.column = &column;
        const std::string folded = fold_name(column.name);
        auto best = [&](std::vector<Seen>& list) -> Seen* {
            Seen* found = nullptr;
            for (auto& s : list)
                if (fold_name(s.name) == folded &&
                    (found == nullptr || s.name == column.name ||
                     (found->name != column.name && s.messages > found->messages)))
                    found = &s;
            return found;
        };
        if (Seen* field = best(fields)) {
            field->used = true;
            plan.source = ColumnSource{ColumnSource::Kind::json_pointer,
                                       "/" + escape_json_pointer_token(field->name)};
            plan.source_text = plan.source->argument;
            std::string kinds;
            for (const auto& k : field->kinds)
                kinds += (kinds.empty() ? "" : "/") + k;
            plan.note = "in " + std::to_string(field->messages) + "/" +
                        std::to_string(samples.size()) + " messages, " + kinds;
        } else if (Seen* header = best(headers)) {
            header->used = true;
            plan.source = ColumnSource{ColumnSource::Kind::header, header->name};
            plan.source_text = "$header." + header->name;
            plan.note = "header in " + std::to_string(header->messages) + "/" +
                        std::to_string(samples.size()) + " messages";
        } else {
            for (const auto& [name, kind] : kProperties)
                if (fold_name(name) == folded) {
                    plan.source = ColumnSource{kind, ""};
                    plan.source_text = std::string("$") + name;
                    plan.note = "AMQP property";
                }
        }
        plans.push_back(std::move(plan));
    }

    // Every mapped column tried on every sample: the row mapper first, then PostgreSQL.
    std::vector<ValueProbe> probes;
    std::vector<std::pair<std::size_t, std::size_t>> probed;  // plan, sample
    for (std::size_t p = 0; p < plans.size(); ++p) {
        ColumnPlan& plan = plans[p];
        if (!plan.source)
            continue;
        TargetConfig one;
        one.table_schema = table.schema;
        one.table_name = table.name;
        ColumnMapping mapping;
        mapping.column = plan.column->name;
        mapping.source_text = plan.source_text;
        mapping.source = *plan.source;
        one.columns.push_back(mapping);
        RowMapper mapper(one, table);
        for (std::size_t s = 0; s < samples.size(); ++s) {
            std::string row;
            auto flag = [&](const std::string& why) {
                if (plan.misfit_count++ < kMisfitsShown)
                    plan.misfits.push_back("message " + std::to_string(s + 1) + ": " + why);
            };
            if (auto reason = mapper.append_row(samples[s], row)) {
                flag(*reason);
                continue;
            }
            auto value = copy_unescape(row);
            if (!value) {
                if (plan.column->not_null)
                    flag("no value (missing or null) but the column is NOT NULL");
                continue;
            }
            probes.push_back(ValueProbe{plan.column->type_name, *value});
            probed.emplace_back(p, s);
        }
    }
    try {
        auto verdicts = probe_values(pg, probes);
        for (std::size_t i = 0; i < verdicts.size(); ++i) {
            if (verdicts[i].empty())
                continue;
            ColumnPlan& plan = plans[probed[i].first];
            if (plan.misfit_count++ < kMisfitsShown)
                plan.misfits.push_back("message " + std::to_string(probed[i].second + 1) + ": " +
                                       verdicts[i]);
        }
    } catch (const WriteError& e) {
        std::fprintf(stderr, "rmq2pg: suggest: values not checked by PostgreSQL: %s\n", e.what());
    }

    // The suggestion: a whole config, its comments saying what to review.
    std::string out;
    out += "# rmq2pg suggest: table " + table.schema + "." + table.name + " (" +
           std::to_string(table.columns.size()) + " columns), " + std::to_string(samples.size()) +
           " message(s) peeked at in queue '" + pipeline.queue + "' (left in place)\n";
    if (given != nullptr) {
        out += sections_besides_pipelines(given->source_file);
    } else {
        out += "amqp:\n  urls: [" + yaml_scalar(options.amqp_url) + "]\n";
        out += "postgres:\n  url: " + yaml_scalar(options.postgres_url) + "\n";
    }
    out += "pipelines:\n";
    out += "  - name: " + yaml_scalar(pipeline.name) + "\n";
    out += "    queue: " + yaml_scalar(pipeline.queue) + "\n";
    if (pipeline.format == MessageFormat::protobuf && pipeline.protobuf.schema)
        out += "    format: protobuf\n    protobuf: { descriptor_set: " +
               yaml_scalar(pipeline.protobuf.descriptor_set) +
               ", message: " + yaml_scalar(pipeline.protobuf.message) + " }\n";
    out += "    table: " + yaml_scalar(table.schema + "." + table.name) + "\n";
    if (given != nullptr && pipeline.mode != WriteMode::insert) {
        out += std::string("    mode: ") + to_string(pipeline.mode) + "\n";
        std::string key;
        for (const auto& k : pipeline.key)
            key += (key.empty() ? "" : ", ") + yaml_scalar(k);
        out += "    key: [" + key + "]\n";
    }
    out += "    columns:\n";
    std::size_t mapped = 0, misfit_columns = 0;
    std::string unmapped;
    for (const auto& plan : plans) {
        if (!plan.source) {
            unmapped += "    #   " + plan.column->name + " (" + plan.column->type_name +
                        (plan.column->not_null ? ", NOT NULL" : "") + ")\n";
            continue;
        }
        ++mapped;
        out += "      " + yaml_scalar(plan.column->name) + ": " + yaml_scalar(plan.source_text) +
               "  # " + plan.column->type_name + "; " + plan.note + "\n";
        if (plan.misfit_count > 0) {
            ++misfit_columns;
            out += "      #   would not convert in " + std::to_string(plan.misfit_count) + " of " +
                   std::to_string(samples.size()) + " message(s):\n";
            for (const auto& m : plan.misfits)
                out += "      #     " + m + "\n";
        }
    }
    if (!unmapped.empty())
        out +=
            "    # columns with no field, header or property of their name (left to their "
            "defaults; map them by hand):\n" +
            unmapped;
    std::string unused;
    std::size_t unused_count = 0;
    for (const auto& f : fields)
        if (!f.used) {
            ++unused_count;
            unused += "    #   /" + escape_json_pointer_token(f.name) + " (in " +
                      std::to_string(f.messages) + "/" + std::to_string(samples.size()) +
                      " messages)\n";
        }
    if (!unused.empty())
        out += "    # fields of the messages no column takes:\n" + unused;
    if (not_json > 0)
        out += "    # " + std::to_string(not_json) + " message(s) were not JSON objects\n";
    if (mapped == 0)
        out += "    # no column matched: map at least one by hand, e.g.\n      " +
               yaml_scalar(table.columns.empty() ? "payload" : table.columns.front().name) +
               ": $body\n";
    std::fputs(out.c_str(), stdout);
    std::fprintf(stderr,
                 "rmq2pg: suggest: %zu of %zu columns mapped, %zu unmapped, %zu field(s) unused, "
                 "%zu column(s) with values that would not convert (%zu message(s) looked at)\n",
                 mapped, table.columns.size(), table.columns.size() - mapped, unused_count,
                 misfit_columns, samples.size());
    return kExitOk;
}

}  // namespace rmq2pg
