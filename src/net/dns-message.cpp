#include "dstack/net/dns-message.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

namespace dstack::net::dns {
namespace {

// Reads the A or AAAA records of an answer section. ares_parse_a_reply would do this, but in
// c-ares 1.18 it drags in ares_getaddrinfo and with it glibc's NSS service look-ups, which
// cannot work in a static binary (and make the static link warn).
std::vector<std::string> parse_addresses(int type, const unsigned char* reply, int length, int& status) {
    std::vector<std::string> out;
    status = ARES_EBADRESP;
    auto u16 = [&](long at) { return (reply[at] << 8) | reply[at + 1]; };
    if (length < 12) return out;
    int questions = u16(4), answers = u16(6);
    long at = 12;
    auto skip_name = [&]() {
        char* name = nullptr;
        long encoded = 0;
        if (at >= length) return false;
        if (ares_expand_name(reply + at, reply, length, &name, &encoded) != ARES_SUCCESS) return false;
        ares_free_string(name);
        at += encoded;
        return at <= length;
    };
    for (int i = 0; i < questions; ++i) {
        if (!skip_name() || at + 4 > length) return out;
        at += 4;
    }
    const std::size_t size = type == ns_t_a ? 4 : 16;
    for (int i = 0; i < answers; ++i) {
        if (!skip_name() || at + 10 > length) return out;
        int record_type = u16(at), record_class = u16(at + 2), data_length = u16(at + 8);
        at += 10;
        if (at + data_length > length) return out;
        if (record_type == type && record_class == ns_c_in && static_cast<std::size_t>(data_length) == size) {
            char text[INET6_ADDRSTRLEN] = {};
            if (::inet_ntop(type == ns_t_a ? AF_INET : AF_INET6, reply + at, text, sizeof text) != nullptr)
                out.emplace_back(text);
        }
        at += data_length;
    }
    status = ARES_SUCCESS;
    return out;
}

std::vector<std::string> parse_txt(const unsigned char* reply, int length, int& status) {
    std::vector<std::string> out;
    ares_txt_ext* records = nullptr;
    status = ares_parse_txt_reply_ext(reply, length, &records);
    if (status != ARES_SUCCESS) return out;
    // A TXT record is a sequence of <=255-byte strings that together form one value.
    for (auto* chunk = records; chunk != nullptr; chunk = chunk->next) {
        if (chunk->record_start || out.empty()) out.emplace_back();
        out.back().append(reinterpret_cast<const char*>(chunk->txt), chunk->length);
    }
    ares_free_data(records);
    return out;
}

}  // namespace

ParsedReply parse_reply(int type, const unsigned char* reply, int length) {
    ParsedReply parsed;
    // ares_send hands over the raw answer; the response code is ours to read (as ares_query would).
    if (reply == nullptr || length < 12) {
        parsed.status = ARES_EBADRESP;
        return parsed;
    }
    int answers = (reply[6] << 8) | reply[7];
    switch (reply[3] & 0x0f) {
        case 0: parsed.status = answers == 0 ? ARES_ENODATA : ARES_SUCCESS; break;
        case 1: parsed.status = ARES_EFORMERR; break;
        case 2: parsed.status = ARES_ESERVFAIL; break;
        case 3: parsed.status = ARES_ENOTFOUND; break;
        case 4: parsed.status = ARES_ENOTIMP; break;
        case 5: parsed.status = ARES_EREFUSED; break;
        default: parsed.status = ARES_EBADRESP; break;
    }
    if (parsed.status != ARES_SUCCESS) return parsed;
    parsed.values = type == ns_t_txt ? parse_txt(reply, length, parsed.status)
                                     : parse_addresses(type, reply, length, parsed.status);
    return parsed;
}

Result<std::vector<unsigned char>> build_question(std::string_view name, int type) {
    std::vector<unsigned char> packet = {0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};  // id set by c-ares; RD; one question
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty()) return make_error("empty name");
    std::size_t encoded = 1;
    while (!name.empty()) {
        auto dot = name.find('.');
        auto label = name.substr(0, dot);
        if (label.empty() || label.size() > 63) return make_error("labels must be 1 to 63 bytes");
        encoded += label.size() + 1;
        packet.push_back(static_cast<unsigned char>(label.size()));
        packet.insert(packet.end(), label.begin(), label.end());
        name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
        if (dot != std::string_view::npos && name.empty()) return make_error("empty label");
    }
    if (encoded > 255) return make_error("name is longer than 255 bytes");
    packet.push_back(0);
    packet.insert(packet.end(), {static_cast<unsigned char>(type >> 8), static_cast<unsigned char>(type & 0xff), 0, ns_c_in});
    return packet;
}

}  // namespace dstack::net::dns
