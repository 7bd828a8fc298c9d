// libFuzzer target: the HTTP/1.1 request parser must never crash, must respect its limits,
// and must reach the same verdict however the bytes are split across reads. The response
// parser gets the same bytes, as the client would from a hostile server.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/net/http-parser.hpp"

using namespace dstack::net::http;

namespace {

struct Outcome {
    std::vector<std::string> summaries;  // one per complete request, in order
    int error_status = 0;
};

std::string summarize(const Request& r) {
    std::string s = r.method + ' ' + r.target + ' ' + std::to_string(r.version_minor) + '\n';
    for (const auto& h : r.headers) s += h.name + ':' + h.value + '\n';
    return s + std::to_string(r.body.size()) + '\n' + r.body;
}

// Feeds `input` in pieces whose sizes come from `splits` (cycled), taking every request out.
Outcome run(std::string_view input, std::string_view splits, const ParserLimits& limits) {
    RequestParser parser(limits);
    Outcome out;
    std::size_t at = 0;
    std::size_t k = 0;
    while (true) {
        std::size_t piece = input.size() - at;
        if (!splits.empty()) piece = std::min<std::size_t>(piece, static_cast<std::uint8_t>(splits[k++ % splits.size()]) + 1);
        parser.feed(input.substr(at, piece));
        at += piece;
        auto status = parser.parse();
        while (status == RequestParser::Status::complete) {
            auto req = parser.take_request();
            if (req.body.size() > limits.max_body_bytes) std::abort();
            out.summaries.push_back(summarize(req));
            status = parser.parse();
        }
        if (status == RequestParser::Status::error) {
            out.error_status = parser.error().status;
            if (out.error_status < 400 || out.error_status > 599 || parser.error().message.empty()) std::abort();
            return out;
        }
        if (at == input.size()) return out;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view all(reinterpret_cast<const char*>(data), size);
    // The first bytes choose the split points; the rest is the stream.
    std::size_t split_bytes = size > 0 ? std::min<std::size_t>(static_cast<std::uint8_t>(all[0]) % 8, size - 1) : 0;
    std::string_view splits = size > 0 ? all.substr(1, split_bytes) : std::string_view{};
    std::string_view input = size > 0 ? all.substr(1 + split_bytes) : all;

    ParserLimits limits;
    limits.max_header_bytes = 2048;  // small limits reach the limit paths often
    limits.max_request_line = 512;
    limits.max_headers = 16;
    limits.max_body_bytes = 4096;
    limits.max_chunk_line = 256;

    auto whole = run(input, {}, limits);
    auto split = run(input, splits, limits);
    if (whole.summaries != split.summaries || whole.error_status != split.error_status) std::abort();

    ResponseParser response(limits);
    response.feed(input);
    auto status = response.parse();
    if (status == ResponseParser::Status::need_more) status = response.finish();
    if (status == ResponseParser::Status::complete && response.take_response().body.size() > limits.max_body_bytes) {
        std::abort();
    }
    return 0;
}
