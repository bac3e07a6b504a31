// AMQP URL parsing; see amqp_url.h for the rules.
#include "amqp_url.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

namespace rmq2pg {
namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool percent_decode(const std::string& in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size())
            return false;
        int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
        if (hi < 0 || lo < 0)
            return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// libpq keyword form: every "password = value" (any case, spaces around '=') gets its value,
// quoted ('two words') or up to the next space, replaced by "***". A plain scan on purpose: it
// replaced std::regex_replace of (password\s*=\s*)('[^']*'|\S+), whose libstdc++ matcher
// recurses once per character and overflowed the stack on a ~100 KB value (found by fuzzing).
std::string mask_keyword_passwords(const std::string& text) {
    static constexpr std::string_view keyword = "password";
    std::string out;
    std::size_t copied = 0;  // text[0, copied) is already in `out`
    for (std::size_t i = 0; i + keyword.size() <= text.size(); ++i) {
        bool match = true;
        for (std::size_t k = 0; k < keyword.size() && match; ++k) {
            char c = text[i + k];
            match = (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) == keyword[k];
        }
        if (!match)
            continue;
        std::size_t j = i + keyword.size();
        while (j < text.size() && is_space(text[j]))
            ++j;
        if (j == text.size() || text[j] != '=')
            continue;
        ++j;
        while (j < text.size() && is_space(text[j]))
            ++j;
        // As libpq's parser reads it, a backslash escapes the next character (quote, space or
        // backslash), quoted or not: the value may only end at an unescaped quote or space.
        std::size_t value_end = j;
        if (j < text.size() && text[j] == '\'') {
            std::size_t close = j + 1;
            while (close < text.size() && text[close] != '\'')
                close += text[close] == '\\' ? 2 : 1;
            if (close < text.size())
                value_end = close + 1;
        }
        if (value_end == j) {  // unquoted, or a quote never closed: up to the next space
            while (value_end < text.size() && !is_space(text[value_end]))
                value_end += text[value_end] == '\\' ? 2 : 1;
            value_end = std::min(value_end, text.size());
        }
        if (value_end == j)
            continue;  // nothing after '=' to mask
        out.append(text, copied, j - copied);
        out += "***";
        copied = value_end;
        i = value_end - 1;  // the next match starts after this value
    }
    out.append(text, copied, std::string::npos);
    return out;
}

bool parse_int(const std::string& text, int& value) {
    if (text.empty())
        return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string AmqpUrl::masked() const {
    return mask_url_password(original);
}

std::string mask_url_password(const std::string& text) {
    // scheme://user:password@  — the password is everything between the first ':' after "//"
    // and the last '@' of the authority, so passwords containing '@' or ':' are masked whole.
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t scheme_end = text.find("://", pos);
        if (scheme_end == std::string::npos)
            break;
        std::size_t authority_begin = scheme_end + 3;
        // The authority ends at the first '/' or space: '?' and '#' may be in a password.
        std::size_t authority_end = text.find_first_of("/ ", authority_begin);
        if (authority_end == std::string::npos)
            authority_end = text.size();
        std::size_t at = text.rfind('@', authority_end);
        std::size_t colon = text.find(':', authority_begin);
        out.append(text, pos, authority_begin - pos);
        if (at != std::string::npos && at >= authority_begin && colon != std::string::npos &&
            colon < at) {
            out.append(text, authority_begin, colon + 1 - authority_begin);
            out += "***";
            out.append(text, at, authority_end - at);
        } else {
            out.append(text, authority_begin, authority_end - authority_begin);
        }
        pos = authority_end;
    }
    out.append(text, std::min(pos, text.size()), std::string::npos);
    return mask_keyword_passwords(out);
}

std::string append_libpq_password(const std::string& conninfo, const std::string& password) {
    std::string out = conninfo;
    if (conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0) {
        // A query parameter, percent-encoded (libpq decodes it): every byte but the unreserved
        // ones is encoded, so no '&', space or quote can end the value early, for libpq or for
        // the masking of logged URLs.
        static constexpr char hex[] = "0123456789ABCDEF";
        if (out.find('?') == std::string::npos)
            out += '?';
        else if (out.back() != '?' && out.back() != '&')
            out += '&';
        out += "password=";
        for (unsigned char c : password) {
            if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                out += static_cast<char>(c);
            } else {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
        return out;
    }
    // key=value form: quoted, with quotes and backslashes escaped by a backslash.
    if (!out.empty() && !is_space(out.back()))
        out += ' ';
    out += "password='";
    for (char c : password) {
        if (c == '\'' || c == '\\')
            out += '\\';
        out += c;
    }
    out += '\'';
    return out;
}

std::optional<AmqpUrl> parse_amqp_url(const std::string& text, std::string& error) {
    AmqpUrl url;
    url.original = text;
    std::string rest;
    if (text.rfind("amqp://", 0) == 0) {
        rest = text.substr(7);
    } else if (text.rfind("amqps://", 0) == 0) {
        rest = text.substr(8);
        url.tls = true;
        url.port = 5671;
    } else {
        error = "scheme must be amqp:// or amqps://";
        return std::nullopt;
    }
    std::string query;
    if (auto q = rest.find('?'); q != std::string::npos) {
        query = rest.substr(q + 1);
        rest.resize(q);
    }
    std::string path;
    bool has_path = false;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        path = rest.substr(slash + 1);
        has_path = true;
        rest.resize(slash);
    }
    std::string hostport = rest;
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        std::string userinfo = rest.substr(0, at);
        hostport = rest.substr(at + 1);
        std::string user = userinfo, password;
        bool has_password = false;
        if (auto colon = userinfo.find(':'); colon != std::string::npos) {
            user = userinfo.substr(0, colon);
            password = userinfo.substr(colon + 1);
            has_password = true;
        }
        if (!percent_decode(user, url.user)) {
            error = "bad percent-encoding in the user name";
            return std::nullopt;
        }
        if (has_password && !percent_decode(password, url.password)) {
            error = "bad percent-encoding in the password";
            return std::nullopt;
        }
    }
    if (!hostport.empty() && hostport[0] == '[') {  // [::1]:5672
        auto close = hostport.find(']');
        if (close == std::string::npos) {
            error = "unclosed '[' in an IPv6 host";
            return std::nullopt;
        }
        url.host = hostport.substr(1, close - 1);
        std::string after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':' || !parse_int(after.substr(1), url.port)) {
                error = "port must be a number";
                return std::nullopt;
            }
        }
    } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
        url.host = hostport.substr(0, colon);
        if (!parse_int(hostport.substr(colon + 1), url.port)) {
            error = "port '" + hostport.substr(colon + 1) + "' is not a number";
            return std::nullopt;
        }
    } else if (!hostport.empty()) {
        url.host = hostport;
    }
    if (url.host.empty())
        url.host = "localhost";
    if (url.port <= 0 || url.port > 65535) {
        error = "port " + std::to_string(url.port) + " is out of range 1-65535";
        return std::nullopt;
    }
    if (has_path && !path.empty()) {
        if (path.find('/') != std::string::npos) {
            error = "the vhost must be one path segment (write '/' as %2f)";
            return std::nullopt;
        }
        if (!percent_decode(path, url.vhost)) {
            error = "bad percent-encoding in the vhost";
            return std::nullopt;
        }
    }
    std::size_t start = 0;
    while (start < query.size()) {
        std::size_t amp = query.find('&', start);
        std::string pair = query.substr(start, amp == std::string::npos ? amp : amp - start);
        start = amp == std::string::npos ? query.size() : amp + 1;
        if (pair.empty())
            continue;
        auto eq = pair.find('=');
        std::string name = pair.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : pair.substr(eq + 1);
        if (name == "heartbeat") {
            if (!parse_int(value, url.heartbeat_s) || url.heartbeat_s < 0) {
                error = "heartbeat must be a whole number of seconds";
                return std::nullopt;
            }
        } else {
            error = "unsupported URL parameter '" + name + "' (supported: heartbeat)";
            return std::nullopt;
        }
    }
    return url;
}

}  // namespace rmq2pg
