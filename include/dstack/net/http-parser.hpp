// Incremental HTTP/1.1 message parsers: bytes in, complete messages out. No I/O and no asio,
// so they can be fuzzed alone. Strict on purpose: anything a proxy in front of us could read
// differently (both Content-Length and Transfer-Encoding, bare CR, obs-fold, odd chunk sizes)
// is refused rather than guessed at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dstack/net/http.hpp"

namespace dstack::net::http {

struct ParserLimits {
    ParserLimits() = default;  // not an aggregate: see Request in http.hpp

    std::size_t max_request_line = 8 * 1024;     // longer: 414
    std::size_t max_header_bytes = 16 * 1024;    // request line + fields (+ trailers): 431
    std::size_t max_headers = 100;               // field count (+ trailers): 431
    std::size_t max_body_bytes = 10 * 1024 * 1024;  // upstream prpc's default limit: 413
    std::size_t max_chunk_line = 4 * 1024;       // chunk size + extensions: 400
};

// Why a message was refused, with the status a server answers.
struct ParseError {
    int status = 400;
    std::string message;
};

namespace detail {

// Framing shared by requests and responses: header fields, Content-Length and chunked bodies.
class MessageParser {
public:
    enum class Status { need_more, complete, error };

    explicit MessageParser(ParserLimits limits) : limits_(limits) {}

    // Appends bytes to the internal buffer; call parse() afterwards.
    void feed(std::string_view bytes) { buffer_.append(bytes); }
    // Consumes as much buffered input as possible. After `complete`, bytes that follow the
    // message stay buffered for the next one.
    Status parse();

    const ParseError& error() const { return error_; }
    // True once the header section is complete (the body may still be arriving).
    bool headers_complete() const { return state_ > State::headers; }
    // True when not a single byte of the next message has arrived.
    bool idle() const { return state_ == State::start && buffer_.empty(); }
    std::size_t buffered_bytes() const { return buffer_.size(); }
    // Body bytes announced by Content-Length (0 for chunked or none).
    std::uint64_t content_length() const { return content_length_; }
    // Body bytes of the current message decoded so far (grows as chunks arrive).
    std::size_t body_size() const { return body_.size(); }
    const Headers& headers() const { return headers_; }

protected:
    enum class State { start, headers, body_length, chunk_size, chunk_data, chunk_data_end, trailers, body_until_close,
                       complete, error };

    // Parses the start line (without CRLF); returns false after calling fail().
    virtual bool parse_start_line(std::string_view line) = 0;
    // Decides the body framing once headers are known; returns false after calling fail().
    virtual bool choose_body() = 0;
    virtual void reset_message() = 0;

    Status fail(int status, std::string message);
    bool select_framing(bool until_close_allowed);
    void prepare_next();

    ParserLimits limits_;
    std::string buffer_;
    std::size_t pos_ = 0;
    State state_ = State::start;
    ParseError error_;
    Headers headers_;
    std::string body_;
    std::uint64_t content_length_ = 0;
    std::uint64_t chunk_remaining_ = 0;
    std::size_t header_bytes_ = 0;   // of the current header (or trailer) section so far
    std::size_t field_count_ = 0;

private:
    // The next CRLF-terminated line (without the CRLF), if complete. A line feed without a
    // carriage return is `bad`; a carriage return alone is caught by the character checks.
    enum class LineResult { found, incomplete, too_long, bad };
    LineResult next_line(std::string_view& line, std::size_t max_length);
    bool parse_field(std::string_view line, bool trailer);
    bool parse_chunk_size(std::string_view line);
    Status step();

    std::size_t scan_pos_ = 0;       // bytes before it hold no line feed of the current line
    int blank_lines_skipped_ = 0;
};

}  // namespace detail

class RequestParser : public detail::MessageParser {
public:
    explicit RequestParser(ParserLimits limits = {}) : MessageParser(limits) {}

    // The request being parsed: method and target are valid once headers_complete(); its
    // header fields are in headers() until take_request().
    const Request& current() const { return request_; }
    // True when the current request carries "Expect: 100-continue".
    bool expects_continue() const;
    // Moves out the complete request and prepares for the next one (pipelining).
    Request take_request();

private:
    bool parse_start_line(std::string_view line) override;
    bool choose_body() override;
    void reset_message() override;

    Request request_;
};

class ResponseParser : public detail::MessageParser {
public:
    explicit ResponseParser(ParserLimits limits = {}) : MessageParser(limits) {}

    // Responses to HEAD, and 1xx/204/304 responses, have no body whatever their headers say.
    void set_request_method(std::string_view method) { head_request_ = method == "HEAD"; }
    // The peer closed the connection: completes a body delimited by the close, or fails.
    Status finish();
    // Moves out the complete response and prepares for the next one. Interim 1xx responses
    // (100 Continue) are skipped while parsing and never returned.
    Response take_response();

private:
    bool parse_start_line(std::string_view line) override;
    bool choose_body() override;
    void reset_message() override;

    Response response_;
    bool head_request_ = false;
};

}  // namespace dstack::net::http
