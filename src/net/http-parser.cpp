// HTTP/1.1 message framing (RFC 9112), strict where leniency would let two parsers disagree
// about where a message ends.
#include "dstack/net/http-parser.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

namespace dstack::net::http {

namespace {

constexpr int max_blank_lines = 4;    // RFC 9112 §2.2: tolerate stray CRLFs between messages
constexpr int max_chunk_hex_digits = 16;

bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
        case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
    }
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// Field values, reason phrases and chunk extensions: HTAB, SP, VCHAR and obs-text.
bool is_field_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Request targets: VCHAR and obs-text, no whitespace or controls.
bool is_target_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "HTTP/1.1" → minor 1. Returns -1 when malformed, -2 when well-formed but not HTTP/1.0 or 1.1.
int parse_version(std::string_view v) {
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return -1;
    if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return -1;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return -2;
    return v[7] - '0';
}

void split_target(std::string_view target, std::string& path, std::string& query, bool& has_query) {
    auto q = target.find('?');
    path.assign(target.substr(0, q));
    has_query = q != std::string_view::npos;
    query.assign(has_query ? target.substr(q + 1) : std::string_view{});
}

}  // namespace

namespace detail {

MessageParser::Status MessageParser::fail(int status, std::string message) {
    state_ = State::error;
    error_ = {status, std::move(message)};
    return Status::error;
}

MessageParser::LineResult MessageParser::next_line(std::string_view& line, std::size_t max_length) {
    std::size_t from = std::max(pos_, scan_pos_);
    std::size_t nl = buffer_.find('\n', from);
    if (nl == std::string::npos) {
        scan_pos_ = buffer_.size();
        // +1: the line may be complete except for its CRLF's LF.
        return buffer_.size() - pos_ > max_length + 1 ? LineResult::too_long : LineResult::incomplete;
    }
    // Length first, so the verdict matches the one given before the line feed arrived.
    if (nl - pos_ > max_length + 1) return LineResult::too_long;
    if (nl == pos_ || buffer_[nl - 1] != '\r') return LineResult::bad;
    line = std::string_view(buffer_).substr(pos_, nl - 1 - pos_);
    pos_ = nl + 1;
    scan_pos_ = pos_;
    return LineResult::found;
}

bool MessageParser::parse_field(std::string_view line, bool trailer) {
    if (line.front() == ' ' || line.front() == '\t') {
        fail(400, "obsolete line folding in header fields is not accepted");
        return false;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
        fail(400, "header line without ':'");
        return false;
    }
    auto name = line.substr(0, colon);
    if (!is_token(name)) {
        fail(400, "invalid header field name");
        return false;
    }
    auto value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), is_field_char)) {
        fail(400, fmt::format("invalid character in header field '{}'", name));
        return false;
    }
    // Trailers are checked but dropped: nothing we serve needs them, and merging them
    // into the header fields after the fact would surprise handlers.
    if (!trailer) headers_.add(std::string(name), std::string(value));
    return true;
}

bool MessageParser::parse_chunk_size(std::string_view line) {
    std::uint64_t size = 0;
    std::size_t i = 0;
    for (; i < line.size() && hex_digit(line[i]) >= 0; ++i) {
        if (i == max_chunk_hex_digits) {
            fail(400, "chunk size too long");
            return false;
        }
        size = size * 16 + static_cast<std::uint64_t>(hex_digit(line[i]));
    }
    if (i == 0) {
        fail(400, "invalid chunk size");
        return false;
    }
    auto rest = line.substr(i);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    if (!rest.empty() && (rest.front() != ';' || !std::all_of(rest.begin(), rest.end(), is_field_char))) {
        fail(400, "invalid chunk size line");
        return false;
    }
    if (size > limits_.max_body_bytes - body_.size()) {
        fail(413, fmt::format("body larger than {} bytes", limits_.max_body_bytes));
        return false;
    }
    chunk_remaining_ = size;
    state_ = size == 0 ? State::trailers : State::chunk_data;
    return true;
}

bool MessageParser::select_framing(bool until_close_allowed) {
    auto te_fields = headers_.get_all("Transfer-Encoding");
    auto cl_fields = headers_.get_all("Content-Length");
    if (!te_fields.empty()) {
        if (!cl_fields.empty()) {
            fail(400, "both Content-Length and Transfer-Encoding present");
            return false;
        }
        int chunked = 0;
        int codings = 0;
        bool chunked_last = false;
        for (auto field : te_fields) {
            while (true) {
                auto comma = field.find(',');
                auto coding = trim_ows(field.substr(0, comma));
                if (!coding.empty()) {
                    ++codings;
                    chunked_last = iequals(coding, "chunked");
                    if (chunked_last) {
                        ++chunked;
                    } else {
                        fail(501, fmt::format("unsupported Transfer-Encoding '{}'", coding));
                        return false;
                    }
                }
                if (comma == std::string_view::npos) break;
                field.remove_prefix(comma + 1);
            }
        }
        if (codings == 0 || chunked != 1 || !chunked_last) {
            fail(400, "invalid Transfer-Encoding");
            return false;
        }
        state_ = State::chunk_size;
        return true;
    }
    if (!cl_fields.empty()) {
        bool have = false;
        std::uint64_t length = 0;
        for (auto field : cl_fields) {
            while (true) {
                auto comma = field.find(',');
                auto digits = trim_ows(field.substr(0, comma));
                if (digits.empty() || digits.size() > 19 ||
                    !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                    fail(400, "invalid Content-Length");
                    return false;
                }
                std::uint64_t value = 0;
                for (char c : digits) value = value * 10 + static_cast<std::uint64_t>(c - '0');  // ≤19 digits: no overflow
                if (have && value != length) {
                    fail(400, "conflicting Content-Length values");
                    return false;
                }
                have = true;
                length = value;
                if (comma == std::string_view::npos) break;
                field.remove_prefix(comma + 1);
            }
        }
        if (length > limits_.max_body_bytes) {
            fail(413, fmt::format("body of {} bytes is larger than the limit of {} bytes", length,
                                  limits_.max_body_bytes));
            return false;
        }
        content_length_ = length;
        state_ = length == 0 ? State::complete : State::body_length;
        return true;
    }
    state_ = until_close_allowed ? State::body_until_close : State::complete;
    return true;
}

MessageParser::Status MessageParser::step() {
    std::string_view line;
    switch (state_) {
        case State::start: {
            while (buffer_.size() - pos_ >= 2 && buffer_[pos_] == '\r' && buffer_[pos_ + 1] == '\n') {
                if (++blank_lines_skipped_ > max_blank_lines) return fail(400, "too many empty lines before the request");
                pos_ += 2;
                scan_pos_ = pos_;
            }
            switch (next_line(line, limits_.max_request_line)) {
                case LineResult::incomplete: return Status::need_more;
                case LineResult::too_long:
                    return fail(414, fmt::format("start line longer than {} bytes", limits_.max_request_line));
                case LineResult::bad: return fail(400, "line not terminated by CRLF");
                case LineResult::found: break;
            }
            if (!parse_start_line(line)) return Status::error;
            header_bytes_ = line.size() + 2;
            if (header_bytes_ > limits_.max_header_bytes) {
                return fail(431, fmt::format("header section larger than {} bytes", limits_.max_header_bytes));
            }
            state_ = State::headers;
            return Status::need_more;
        }
        case State::headers:
        case State::trailers: {
            bool trailer = state_ == State::trailers;
            switch (next_line(line, limits_.max_header_bytes - header_bytes_)) {
                case LineResult::incomplete: return Status::need_more;
                case LineResult::too_long:
                    return fail(431, fmt::format("header section larger than {} bytes", limits_.max_header_bytes));
                case LineResult::bad: return fail(400, "line not terminated by CRLF");
                case LineResult::found: break;
            }
            header_bytes_ += line.size() + 2;
            if (header_bytes_ > limits_.max_header_bytes) {
                return fail(431, fmt::format("header section larger than {} bytes", limits_.max_header_bytes));
            }
            if (line.empty()) {
                if (trailer) {
                    state_ = State::complete;
                } else if (!choose_body()) {
                    return Status::error;
                }
                return Status::need_more;
            }
            if (++field_count_ > limits_.max_headers) {
                return fail(431, fmt::format("more than {} header fields", limits_.max_headers));
            }
            if (!parse_field(line, trailer)) return Status::error;
            return Status::need_more;
        }
        case State::body_length:
        case State::chunk_data: {
            std::uint64_t& remaining = state_ == State::body_length ? content_length_ : chunk_remaining_;
            std::size_t available = buffer_.size() - pos_;
            if (available == 0) return Status::need_more;
            auto take = static_cast<std::size_t>(std::min<std::uint64_t>(available, remaining));
            body_.append(buffer_, pos_, take);
            pos_ += take;
            scan_pos_ = pos_;
            remaining -= take;
            if (remaining == 0) state_ = state_ == State::body_length ? State::complete : State::chunk_data_end;
            return Status::need_more;
        }
        case State::chunk_data_end: {
            if (buffer_.size() - pos_ < 2) return Status::need_more;
            if (buffer_[pos_] != '\r' || buffer_[pos_ + 1] != '\n') return fail(400, "chunk data not followed by CRLF");
            pos_ += 2;
            scan_pos_ = pos_;
            state_ = State::chunk_size;
            return Status::need_more;
        }
        case State::chunk_size: {
            switch (next_line(line, limits_.max_chunk_line)) {
                case LineResult::incomplete: return Status::need_more;
                case LineResult::too_long: return fail(400, "chunk size line too long");
                case LineResult::bad: return fail(400, "line not terminated by CRLF");
                case LineResult::found: break;
            }
            if (!parse_chunk_size(line)) return Status::error;
            return Status::need_more;
        }
        case State::body_until_close: {
            std::size_t available = buffer_.size() - pos_;
            if (available > limits_.max_body_bytes - body_.size()) {
                return fail(413, fmt::format("body larger than {} bytes", limits_.max_body_bytes));
            }
            body_.append(buffer_, pos_, available);
            pos_ += available;
            scan_pos_ = pos_;
            return Status::need_more;
        }
        case State::complete: return Status::complete;
        case State::error: return Status::error;
    }
    return Status::error;
}

MessageParser::Status MessageParser::parse() {
    Status status;
    std::size_t before;
    do {
        before = pos_;
        auto state_before = state_;
        status = step();
        if (status != Status::need_more) break;
        if (pos_ == before && state_ == state_before) break;  // nothing more to consume
    } while (true);
    // Drop consumed bytes so the buffer holds at most one partial line or unread body part.
    if (pos_ > 0 && state_ != State::error) {
        buffer_.erase(0, pos_);
        scan_pos_ -= std::min(scan_pos_, pos_);
        pos_ = 0;
    }
    return status;
}

void MessageParser::prepare_next() {
    headers_ = Headers{};
    body_.clear();
    body_.shrink_to_fit();
    content_length_ = 0;
    chunk_remaining_ = 0;
    header_bytes_ = 0;
    field_count_ = 0;
    blank_lines_skipped_ = 0;
    scan_pos_ = pos_;
    state_ = State::start;
    reset_message();
}

}  // namespace detail

// ---- requests ----

bool RequestParser::parse_start_line(std::string_view line) {
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        fail(400, "malformed request line");
        return false;
    }
    auto method = line.substr(0, sp1);
    auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto version = line.substr(sp2 + 1);
    if (!is_token(method)) {
        fail(400, "malformed request line: invalid method");
        return false;
    }
    if (target.empty() || !std::all_of(target.begin(), target.end(), is_target_char) ||
        target.find('#') != std::string_view::npos) {
        fail(400, "malformed request line: invalid request target");
        return false;
    }
    int minor = parse_version(version);
    if (minor == -1) {
        fail(400, "malformed request line: invalid HTTP version");
        return false;
    }
    if (minor == -2) {
        fail(505, fmt::format("HTTP version {} is not supported", version));
        return false;
    }
    request_.method.assign(method);
    request_.target.assign(target);
    request_.version_minor = minor;
    if (target.front() == '/') {
        split_target(target, request_.path, request_.query, request_.has_query);
    } else if (target == "*" && method == "OPTIONS") {
        request_.path = "*";
    } else {
        // absolute-form (RFC 9112 §3.2.2): servers must accept it even when not a proxy.
        std::string_view rest;
        if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) rest = target.substr(7);
        else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) rest = target.substr(8);
        else {
            fail(400, "malformed request line: unsupported request target form");
            return false;
        }
        auto slash = rest.find_first_of("/?");
        auto origin = slash == std::string_view::npos ? std::string("/") : std::string(rest.substr(slash));
        if (origin.front() == '?') origin.insert(0, "/");
        split_target(origin, request_.path, request_.query, request_.has_query);
    }
    return true;
}

bool RequestParser::choose_body() {
    if (request_.version_minor == 0 && headers_.contains("Transfer-Encoding")) {
        // RFC 9112 §6.1: chunked framing from an HTTP/1.0 peer cannot be trusted.
        fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        return false;
    }
    return select_framing(false);
}

void RequestParser::reset_message() { request_ = Request{}; }

bool RequestParser::expects_continue() const {
    auto expect = headers_.get("Expect");
    return expect && iequals(*expect, "100-continue");
}

Request RequestParser::take_request() {
    Request out = std::move(request_);
    out.headers = std::move(headers_);
    out.body = std::move(body_);
    prepare_next();
    return out;
}

// ---- responses ----

bool ResponseParser::parse_start_line(std::string_view line) {
    auto sp = line.find(' ');
    auto version = line.substr(0, sp);
    int minor = parse_version(version);
    if (minor < 0) {
        fail(minor == -1 ? 400 : 505, "malformed status line");
        return false;
    }
    if (sp == std::string_view::npos || line.size() < sp + 4) {
        fail(400, "malformed status line");
        return false;
    }
    auto code = line.substr(sp + 1, 3);
    if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) || code[0] == '0') {
        fail(400, "malformed status code");
        return false;
    }
    auto rest = line.substr(sp + 4);
    if (!rest.empty() && (rest.front() != ' ' || !std::all_of(rest.begin(), rest.end(), is_field_char))) {
        fail(400, "malformed status line");
        return false;
    }
    response_.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    response_.reason.assign(rest.empty() ? rest : rest.substr(1));
    return true;
}

bool ResponseParser::choose_body() {
    int status = response_.status;
    if (status >= 100 && status < 200) {
        // Interim response: forget it and read the final one.
        bool head = head_request_;
        prepare_next();
        head_request_ = head;
        return true;
    }
    if (head_request_ || status == 204 || status == 304) {
        state_ = State::complete;
        return true;
    }
    return select_framing(true);
}

void ResponseParser::reset_message() { response_ = Response{}; }

ResponseParser::Status ResponseParser::finish() {
    auto status = parse();
    if (status != Status::need_more) return status;
    if (state_ == State::body_until_close) {
        state_ = State::complete;
        return Status::complete;
    }
    return fail(502, idle() ? "connection closed before a response" : "connection closed in the middle of a response");
}

Response ResponseParser::take_response() {
    Response out = std::move(response_);
    out.headers = std::move(headers_);
    out.body = std::move(body_);
    prepare_next();
    return out;
}

}  // namespace dstack::net::http
