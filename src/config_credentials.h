// The files a config names for its connections (password files, TLS CA/certificate/key): read and
// checked at load, and digested so a reload notices a rotated secret. Used by the config loader.
#pragma once

#include <optional>
#include <string>

#include "amqp_url.h"
#include "config_reader.h"

namespace rmq2pg {

// A regular file of at most 1 MiB: its content, or nullopt with the reason in `error`.
std::optional<std::string> read_named_file(const std::string& path, std::string& error);
// The password alone: trailing newlines dropped, an empty file refused.
std::optional<std::string> read_password_file(const std::string& path, std::string& error);
// "path hash\n": what a reload compares for a file the connections read.
std::string file_digest(const std::string& path, const std::string& content);

// amqp.tls: fills `options` and appends the digest of every file it names to `file_digests`.
void read_amqp_tls(ConfigReader& r, const YAML::Node& tls, AmqpTlsOptions& options,
                   std::string& file_digests);

}  // namespace rmq2pg
