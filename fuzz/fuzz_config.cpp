// libFuzzer target for the config loader: any text must either load into a Config or be refused
// with ConfigError; another exception, a crash, a hang or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "config.h"
#include "json_pointer.h"
#include "topic_match.h"

namespace {

// abort() (not assert) so the check also holds in release builds and libFuzzer saves the input.
[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_config: %s: %s\n", what, detail.c_str());
    std::abort();
}

// row_mapper relies on the loader having validated every pointer's syntax.
void check_pointer(const std::string& pointer) {
    if (auto problem = rmq2pg::validate_json_pointer(pointer))
        fail("invalid JSON Pointer accepted", pointer + ": " + *problem);
}

// What a loaded Config promises the rest of the daemon (worker, row mapper, writer).
void check_loaded(const rmq2pg::Config& config) {
    if (config.amqp_urls.empty())
        fail("loaded without an amqp URL", config.source_file);
    if (config.pipelines.empty())
        fail("loaded without a pipeline", config.source_file);
    for (const auto& url : config.amqp_urls)
        if (url.port <= 0 || url.port > 65535)
            fail("port out of range", std::to_string(url.port));
    if (config.http.enabled() &&
        (config.http.host.empty() || config.http.port < 1 || config.http.port > 65535))
        fail("bad http.listen accepted", config.http.listen);
    for (const auto& p : config.pipelines) {
        if (p.name.empty() || p.queue.empty())
            fail("pipeline without name or queue", p.name);
        if (p.batch.max_messages > static_cast<std::size_t>(p.prefetch))
            fail("batch.max_messages above prefetch", p.name);
        if (!p.dedupe.empty() && p.dedupe != "message_id")
            check_pointer(p.dedupe);
        for (const rmq2pg::TargetConfig* t : p.targets()) {
            if (t->table_name.empty() || t->columns.empty())
                fail("target without a table or columns", p.name);
            if (auto problem = rmq2pg::validate_topic_pattern(t->match))
                fail("invalid route pattern accepted", t->match + ": " + *problem);
            // Exercise the matcher on what was accepted: it must not crash on any pattern.
            (void)rmq2pg::topic_matches(t->match, "a.b.c");
            (void)rmq2pg::topic_matches(t->match, t->match);
            if (t->delete_when)
                check_pointer(t->delete_when->field);
            for (const auto& c : t->columns) {
                using Kind = rmq2pg::ColumnSource::Kind;
                if (c.source.kind == Kind::json_pointer)
                    check_pointer(c.source.argument);
                if (c.source.kind == Kind::header && c.source.argument.empty())
                    fail("empty $header. name accepted", c.column);
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        check_loaded(rmq2pg::load_config_text(text, "fuzz.yaml"));
    } catch (const rmq2pg::ConfigError& e) {
        if (e.problems().empty())
            fail("ConfigError without a problem", e.what());
    } catch (const std::exception& e) {
        fail("exception other than ConfigError escaped", e.what());
    }
    // Anything else (not a std::exception) escapes and terminates, which libFuzzer reports too.
    return 0;
}
