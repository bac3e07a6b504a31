// Credentials and TLS settings in the config: amqp.password_file, postgres.password_file and
// amqp.tls load and are checked at load, and a password read from a file reaches the clients
// intact (libpq parses it back exactly) while every masked form hides it.
#include <catch2/catch.hpp>

#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "amqp_url.h"
#include "config.h"

using rmq2pg::Config;
using rmq2pg::ConfigError;
using rmq2pg::load_config_text;
using rmq2pg::mask_url_password;

namespace {

// A file under a private temporary directory, removed with it at the end of the test.
class TempDir {
  public:
    TempDir() {
        char pattern[] = "/tmp/rmq2pg-unit-XXXXXX";
        path_ = mkdtemp(pattern);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string write(const std::string& name, const std::string& content) const {
        std::string file = path_ + "/" + name;
        std::ofstream(file, std::ios::binary) << content;
        return file;
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// Joins lines with '\n' (and a final one).
std::string lines(std::initializer_list<std::string> ls) {
    std::string out;
    for (const auto& l : ls)
        out += l + '\n';
    return out;
}

std::string config_text(const std::string& amqp_extra, const std::string& postgres_url,
                        const std::string& postgres_extra = "") {
    return lines({"amqp:",
                  R"(  urls: ["amqp://alice:inline@rabbit-1/", "amqps://bob@rabbit-2/prod"])"}) +
           amqp_extra + lines({"postgres:", "  url: \"" + postgres_url + "\""}) + postgres_extra +
           lines({"pipelines:", "  - name: p", "    queue: q", "    table: t",
                  "    columns: { id: /id }"});
}

// What libpq reads as the password of a connection string ("" when none, or when it does not
// parse: then `error` says why).
std::string libpq_password(const std::string& conninfo, std::string& error) {
    char* message = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &message);
    if (options == nullptr) {
        error = message != nullptr ? message : "out of memory";
        PQfreemem(message);
        return "";
    }
    std::string password;
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o)
        if (std::string(o->keyword) == "password" && o->val != nullptr)
            password = o->val;
    PQconninfoFree(options);
    return password;
}

std::string problems_of(const std::string& text) {
    try {
        load_config_text(text, "c.yaml");
    } catch (const ConfigError& e) {
        std::string all;
        for (const auto& p : e.problems())
            all += p + "\n";
        return all;
    }
    return "";
}

}  // namespace

TEST_CASE("amqp.password_file gives every URL its password, which no masked URL shows",
          "[credentials]") {
    TempDir dir;
    std::string file = dir.write("amqp-password", "s3cr3t:p@ss/w%rd\n");
    Config c = load_config_text(
        config_text("  password_file: " + file + "\n", "postgresql://u@db/app"), "c.yaml");
    REQUIRE(c.amqp_urls.size() == 2);
    CHECK(c.amqp_password_file == file);
    for (const auto& url : c.amqp_urls) {
        CHECK(url.password == "s3cr3t:p@ss/w%rd");  // the trailing newline is not part of it
        CHECK(url.masked().find("s3cr3t") == std::string::npos);
    }
    CHECK(c.amqp_urls[0].masked() == "amqp://alice:***@rabbit-1/");
    CHECK(c.amqp_urls[1].masked() == "amqps://bob@rabbit-2/prod");
    CHECK(c.amqp_urls[1].user == "bob");
}

TEST_CASE("a password file loses its trailing newlines, CRLF included, and nothing else",
          "[credentials]") {
    TempDir dir;
    std::string file = dir.write("pw", " two words \r\n\n");
    Config c = load_config_text(
        config_text("  password_file: " + file + "\n", "postgresql://u@db/app"), "c.yaml");
    CHECK(c.amqp_urls[0].password == " two words ");
}

TEST_CASE(
    "postgres.password_file reaches libpq exactly, in URL and key=value form, and masked "
    "connection strings hide it",
    "[credentials]") {
    TempDir dir;
    // Everything that could end a value early or be read as syntax by libpq or the masking.
    const std::string password = "s3cr3t 'q' \\ & ? = # @ : / % ~ end";
    std::string file = dir.write("pg-password", password + "\n");
    const char* urls[] = {
        "postgresql://u@db:5432/app",
        "postgresql://u@db/app?sslmode=verify-full&sslrootcert=/etc/ca.crt",
        "postgresql://u:old@db/app",  // the file's password overrides the URL's
        "postgres://u@db/app?",
        "host=db user=u dbname=app",
        "host=db password='old one' user=u",
    };
    for (const char* url : urls) {
        INFO(url);
        Config c =
            load_config_text(config_text("", url, "  password_file: " + file + "\n"), "c.yaml");
        CHECK(c.postgres_password_file == file);
        std::string error;
        CHECK(libpq_password(c.postgres_url, error) == password);
        CHECK(error.empty());
        std::string masked = mask_url_password(c.postgres_url);
        CHECK(masked.find("s3cr3t") == std::string::npos);
        CHECK(masked.find("end") == std::string::npos);
        CHECK(masked.find("password=***") != std::string::npos);
        bool rest_readable = masked.rfind(url, 0) == 0 ||  // what the user wrote is kept
                             masked.find("u:***@db") != std::string::npos ||
                             masked.find("password=*** user=u") != std::string::npos;
        CHECK(rest_readable);
    }
}

TEST_CASE("masking reads libpq's backslash escapes, so an escaped quote or space hides too",
          "[credentials]") {
    CHECK(mask_url_password("password='it\\'s secret' host=db") == "password=*** host=db");
    CHECK(mask_url_password("password=two\\ words host=db") == "password=*** host=db");
    CHECK(mask_url_password("password='ends in \\\\' host=db") == "password=*** host=db");
    CHECK(mask_url_password("host=db password=trailing\\") == "host=db password=***");
}

TEST_CASE("a missing or empty password file is an error naming file, line and key",
          "[credentials]") {
    TempDir dir;
    std::string empty = dir.write("empty", "\n");
    std::string problems =
        problems_of(config_text("  password_file: " + dir.path() + "/nope\n",
                                "postgresql://u@db/app", "  password_file: " + empty + "\n"));
    CHECK(problems.find("c.yaml:3: amqp.password_file: cannot read '" + dir.path() +
                        "/nope': No such file or directory") != std::string::npos);
    CHECK(problems.find("c.yaml:6: postgres.password_file: '" + empty + "' is empty") !=
          std::string::npos);
    CHECK(problems_of(config_text("  password_file: " + dir.path() + "\n", "postgresql://u@db/app"))
              .find("is a directory") != std::string::npos);
    CHECK(problems_of(config_text("  password_file: /dev/zero\n", "postgresql://u@db/app"))
              .find("is not a regular file") != std::string::npos);
}

TEST_CASE("amqp.tls defaults to verifying the broker, and its settings reach every URL",
          "[credentials]") {
    Config plain = load_config_text(config_text("", "postgresql://u@db/app"), "c.yaml");
    CHECK(plain.amqp_tls.verify_peer);
    CHECK(plain.amqp_tls.verify_hostname);
    CHECK(plain.amqp_tls.ca_file.empty());
    CHECK(plain.amqp_urls[1].tls);
    CHECK(plain.amqp_urls[1].tls_options.verify_peer);

    TempDir dir;
    std::string ca = dir.write("ca.crt", "PEM");
    std::string cert = dir.write("client.crt", "PEM");
    std::string key = dir.write("client.key", "PEM");
    std::string tls = lines({"  tls:", "    ca_file: " + ca, "    cert_file: " + cert,
                             "    key_file: " + key, "    verify_hostname: false"});
    Config c = load_config_text(config_text(tls, "postgresql://u@db/app"), "c.yaml");
    for (const auto& url : c.amqp_urls) {
        CHECK(url.tls_options.ca_file == ca);
        CHECK(url.tls_options.cert_file == cert);
        CHECK(url.tls_options.key_file == key);
        CHECK(url.tls_options.verify_peer);
        CHECK_FALSE(url.tls_options.verify_hostname);
    }
}

TEST_CASE("amqp.tls files must exist, come as a pair for the client, and keys be known",
          "[credentials]") {
    TempDir dir;
    std::string cert = dir.write("client.crt", "PEM");
    std::string tls =
        lines({"  tls:", "    ca_file: " + dir.path() + "/missing.crt", "    cert_file: " + cert,
               "    verify_peer: maybe", "    verify: true"});
    std::string problems = problems_of(config_text(tls, "postgresql://u@db/app"));
    CHECK(problems.find("c.yaml:4: amqp.tls.ca_file: cannot read '" + dir.path() +
                        "/missing.crt': No such file or directory") != std::string::npos);
    CHECK(problems.find("amqp.tls.key_file: cert_file and key_file go together") !=
          std::string::npos);
    CHECK(problems.find("c.yaml:6: amqp.tls.verify_peer: expected true or false, got 'maybe'") !=
          std::string::npos);
    CHECK(problems.find("c.yaml:7: amqp.tls.verify: unknown key") != std::string::npos);
}

TEST_CASE("a rotated password file or certificate changes the connection fingerprint",
          "[credentials]") {
    // A reload compares the fingerprint: the same file names with new contents must restart the
    // connections, or a reconnect after a rotation would still use the old secret.
    TempDir dir;
    std::string amqp_password = dir.write("amqp-password", "first\n");
    std::string pg_password = dir.write("pg-password", "first\n");
    std::string cert = dir.write("client.crt", "PEM 1");
    std::string key = dir.write("client.key", "KEY 1");
    auto load = [&] {
        std::string amqp = lines({"  password_file: " + amqp_password,
                                  "  tls:", "    cert_file: " + cert, "    key_file: " + key});
        return load_config_text(config_text(amqp, "postgresql://u@db/app",
                                            "  password_file: " + pg_password + "\n"),
                                "c.yaml")
            .connection_fingerprint;
    };
    std::string before = load();
    CHECK(load() == before);  // nothing changed: the same fingerprint
    dir.write("amqp-password", "second\n");
    std::string amqp_rotated = load();
    CHECK(amqp_rotated != before);
    dir.write("pg-password", "second\n");
    std::string pg_rotated = load();
    CHECK(pg_rotated != amqp_rotated);
    dir.write("client.crt", "PEM 2");
    dir.write("client.key", "KEY 2");
    std::string cert_rotated = load();
    CHECK(cert_rotated != pg_rotated);
    // The fingerprint keeps no secret in clear.
    CHECK(cert_rotated.find("second") == std::string::npos);
    CHECK(cert_rotated.find("KEY 2") == std::string::npos);
}
