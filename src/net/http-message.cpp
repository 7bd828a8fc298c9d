// HTTP message containers and the small text codecs (JSON string escaping, percent-decoding)
// that handlers need for them.
#include "dstack/net/http.hpp"

#include <algorithm>
#include <cstdint>

namespace dstack::net::http {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}


}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

void Headers::add(std::string name, std::string value) {
    fields_.push_back({std::move(name), std::move(value)});
}

void Headers::set(std::string name, std::string value) {
    remove(name);
    add(std::move(name), std::move(value));
}

void Headers::remove(std::string_view name) {
    std::erase_if(fields_, [&](const Header& h) { return iequals(h.name, name); });
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
    for (const auto& h : fields_) {
        if (iequals(h.name, name)) return std::string_view(h.value);
    }
    return std::nullopt;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& h : fields_) {
        if (iequals(h.name, name)) out.emplace_back(h.value);
    }
    return out;
}

bool Headers::has_token(std::string_view name, std::string_view token) const {
    for (auto value : get_all(name)) {
        while (!value.empty()) {
            auto comma = value.find(',');
            auto item = trim_ows(value.substr(0, comma));
            if (iequals(item, token)) return true;
            if (comma == std::string_view::npos) break;
            value.remove_prefix(comma + 1);
        }
    }
    return false;
}

bool Request::keep_alive() const {
    if (headers.has_token("Connection", "close")) return false;
    if (version_minor >= 1) return true;
    return headers.has_token("Connection", "keep-alive");
}

Response Response::json(std::string body, int status) {
    Response r;
    r.status = status;
    r.headers.add("Content-Type", "application/json");
    r.body = std::move(body);
    return r;
}

Response Response::text(std::string body, int status) {
    Response r;
    r.status = status;
    r.headers.add("Content-Type", "text/plain; charset=utf-8");
    r.body = std::move(body);
    return r;
}

Response Response::json_error(int status, std::string_view message) {
    return json("{\"error\":\"" + json_escape(message) + "\"}", status);
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 304: return "Not Modified";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 417: return "Expectation Failed";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

Result<std::string> percent_decode(std::string_view text, bool plus_as_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            bool complete = i + 2 < text.size();
            int hi = complete ? hex_value(text[i + 1]) : -1;
            int lo = complete ? hex_value(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return make_error("invalid percent-encoding at position {}", i);
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

Result<std::vector<QueryParam>> parse_query(std::string_view query) {
    std::vector<QueryParam> params;
    while (!query.empty()) {
        auto amp = query.find('&');
        auto piece = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (piece.empty()) continue;
        auto eq = piece.find('=');
        auto raw_key = piece.substr(0, eq);
        auto raw_value = eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
        auto key = percent_decode(raw_key, true);
        if (!key) return std::move(key).take_error().context("query string");
        auto value = percent_decode(raw_value, true);
        if (!value) return std::move(value).take_error().context(fmt::format("query parameter '{}'", *key));
        params.push_back({std::move(*key), std::move(*value)});
    }
    return params;
}

}  // namespace dstack::net::http
