// Credential and certificate files named in the config (config_credentials.h): checked at load,
// when the operator is watching, rather than at the first connect.
#include "config_credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include <sys/stat.h>

namespace rmq2pg {

// A file named in the config (certificates, keys, password files) is checked at load, when the
// operator is watching, rather than at the first connect. Returns its content, or nullopt with
// the reason in `error`.
std::optional<std::string> read_named_file(const std::string& path, std::string& error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = "cannot read '" + path + "': " + std::strerror(errno);
        return std::nullopt;
    }
    if (S_ISDIR(st.st_mode)) {
        error = "'" + path + "' is a directory, not a file";
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        // A FIFO would block the load, /dev/zero would never end.
        error = "'" + path + "' is not a regular file";
        return std::nullopt;
    }
    // Passwords, certificates and keys are small; a bigger file is a wrong path.
    constexpr off_t kMaxNamedFile = 1 << 20;
    if (st.st_size > kMaxNamedFile) {
        error = "'" + path + "' is larger than 1 MiB: not a password, certificate or key";
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::string content;
    if (in)
        content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.is_open() || in.bad()) {
        error = "cannot read '" + path + "': " + std::strerror(errno);
        return std::nullopt;
    }
    return content;
}

// A password file holds the password alone; the newline that `echo` or an editor leaves at
// its end is not part of it (a password ending in a newline could not be typed anyway).
std::optional<std::string> read_password_file(const std::string& path, std::string& error) {
    auto content = read_named_file(path, error);
    if (!content)
        return std::nullopt;
    while (!content->empty() && (content->back() == '\n' || content->back() == '\r'))
        content->pop_back();
    if (content->empty()) {
        error = "'" + path + "' is empty";
        return std::nullopt;
    }
    return content;
}

// What a reload compares for a file the connections read: its content, hashed so no secret is
// kept twice. The file names alone would miss a rotated certificate or password.
std::string file_digest(const std::string& path, const std::string& content) {
    return path + " " + std::to_string(std::hash<std::string>{}(content)) + "\n";
}

void read_amqp_tls(ConfigReader& r, const YAML::Node& tls, AmqpTlsOptions& options,
                   std::string& file_digests) {
    if (!r.expect_map(tls, "amqp.tls"))
        return;
    r.check_keys(tls, "amqp.tls",
                 {"ca_file", "cert_file", "key_file", "verify_peer", "verify_hostname"});
    std::pair<const char*, std::string*> files[] = {{"ca_file", &options.ca_file},
                                                    {"cert_file", &options.cert_file},
                                                    {"key_file", &options.key_file}};
    bool given[3] = {false, false, false};
    for (std::size_t i = 0; i < 3; ++i) {
        auto path = r.string(tls, files[i].first, "amqp.tls");
        if (!path || path->empty())  // "" (e.g. "${CA_FILE:-}") means not set
            continue;
        given[i] = true;
        std::string error;
        if (auto content = read_named_file(*path, error)) {
            *files[i].second = *path;
            file_digests += file_digest(*path, *content);
        } else
            r.problem(tls[files[i].first], std::string("amqp.tls.") + files[i].first, error);
    }
    if (given[1] != given[2])
        r.problem(tls, given[1] ? "amqp.tls.key_file" : "amqp.tls.cert_file",
                  "cert_file and key_file go together (the client certificate and its key)");
    r.boolean(tls, "verify_peer", "amqp.tls", options.verify_peer);
    r.boolean(tls, "verify_hostname", "amqp.tls", options.verify_hostname);
}
}  // namespace rmq2pg
