#include "dstack/crypto/pem.hpp"

#include "dstack/base/base64.hpp"

namespace dstack::crypto {

std::string pem_encode(std::string_view label, ByteView der) {
    std::string body = base64_encode(der);
    std::string out = fmt::format("-----BEGIN {}-----\n", label);
    for (std::size_t i = 0; i < body.size(); i += 64) {
        out.append(body, i, 64);
        out += '\n';
    }
    out += fmt::format("-----END {}-----\n", label);
    return out;
}

Result<std::vector<PemBlock>> pem_decode_all(std::string_view text) {
    if (text.size() > max_encoded_size)
        return make_error("PEM text of {} bytes exceeds the {}-byte limit", text.size(), max_encoded_size);
    constexpr std::string_view begin_marker = "-----BEGIN ";
    constexpr std::string_view dashes = "-----";
    std::vector<PemBlock> blocks;
    std::size_t position = 0;
    while ((position = text.find(begin_marker, position)) != std::string_view::npos) {
        std::size_t label_start = position + begin_marker.size();
        std::size_t label_end = text.find(dashes, label_start);
        if (label_end == std::string_view::npos) return make_error("PEM: unterminated BEGIN line");
        std::string label(text.substr(label_start, label_end - label_start));
        if (label.find('\n') != std::string::npos) return make_error("PEM: malformed BEGIN line");
        std::string end_line = fmt::format("-----END {}-----", label);
        std::size_t body_start = label_end + dashes.size();
        std::size_t end = text.find(end_line, body_start);
        if (end == std::string_view::npos) return make_error("PEM: no END line for \"{}\"", label);
        std::string body;
        for (char c : text.substr(body_start, end - body_start)) {
            if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
            body += c;
        }
        auto der = base64_decode(body);
        // The body may encode a private key: do not leave its text behind in freed memory.
        wipe({reinterpret_cast<std::uint8_t*>(body.data()), body.size()});
        if (!der) return std::move(der).take_error().context(fmt::format("PEM \"{}\" body", label));
        blocks.push_back({std::move(label), std::move(*der)});
        position = end + end_line.size();
    }
    if (blocks.empty()) return make_error("no PEM block found");
    return blocks;
}

Result<Bytes> pem_decode(std::string_view text, std::string_view label) {
    DSTACK_TRY(auto blocks, pem_decode_all(text));
    for (auto& block : blocks)
        if (block.label == label) return std::move(block.der);
    return make_error("no PEM block labelled \"{}\" found (first is \"{}\")", label, blocks.front().label);
}

}  // namespace dstack::crypto
