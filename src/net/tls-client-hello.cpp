// Reading the ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2; SNI RFC 6066 §3; ALPN RFC 7301)
// off the record layer (RFC 8446 §5.1).
#include "dstack/net/tls-client-hello.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include "dstack/base/result.hpp"

namespace dstack::net {

namespace {

constexpr std::uint8_t content_type_handshake = 22;
constexpr std::uint8_t handshake_client_hello = 1;
constexpr std::size_t max_record_payload = 16384;  // 2^14, RFC 8446 §5.1
constexpr std::uint16_t extension_server_name = 0;
constexpr std::uint16_t extension_alpn = 16;
constexpr std::uint8_t name_type_host_name = 0;

ClientHelloScan invalid(std::string why) {
    ClientHelloScan scan;
    scan.status = ClientHelloStatus::invalid;
    scan.error = std::move(why);
    return scan;
}

// A bounds-checked cursor over the reassembled handshake message.
class Reader {
public:
    explicit Reader(ByteView bytes) : bytes_(bytes) {}
    std::size_t left() const { return bytes_.size() - at_; }
    bool u8(std::uint8_t& out) {
        if (left() < 1) return false;
        out = bytes_[at_++];
        return true;
    }
    bool u16(std::uint16_t& out) {
        if (left() < 2) return false;
        out = static_cast<std::uint16_t>((bytes_[at_] << 8) | bytes_[at_ + 1]);
        at_ += 2;
        return true;
    }
    bool take(std::size_t count, ByteView& out) {
        if (left() < count) return false;
        out = bytes_.subspan(at_, count);
        at_ += count;
        return true;
    }
    // A vector with a length prefix of `width` bytes (1 or 2).
    bool vector(int width, ByteView& out) {
        std::uint16_t length = 0;
        if (width == 1) {
            std::uint8_t short_length = 0;
            if (!u8(short_length)) return false;
            length = short_length;
        } else if (!u16(length)) {
            return false;
        }
        return take(length, out);
    }

private:
    ByteView bytes_;
    std::size_t at_ = 0;
};

// The host name as the gateway compares it: ASCII letters lowercased, one trailing dot dropped.
Result<std::string> normalize_host_name(ByteView raw) {
    std::string name(as_chars(raw));
    std::string shown = fmt::format("{:?}", name.substr(0, 80));  // escaped: the bytes are the client's
    if (!name.empty() && name.back() == '.') name.pop_back();
    if (name.empty()) return make_error("the server name {} is empty", shown);
    if (name.size() > 253) return make_error("the server name {}... is {} bytes long (at most 253)", shown, name.size());
    std::size_t label = 0;
    for (char& c : name) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0) return make_error("the server name {} has an empty label", shown);
            label = 0;
            continue;
        }
        bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!allowed)
            return make_error("the server name {} has a character other than letters, digits, '-', '_' and '.' "
                              "(byte 0x{:02x}; internationalized names are sent as xn-- labels)",
                              shown, static_cast<unsigned char>(c));
        if (++label > 63) return make_error("the server name {} has a label longer than 63 characters", shown);
    }
    if (label == 0) return make_error("the server name {} has an empty label", shown);
    return name;
}

Result<std::string> read_server_name(ByteView data) {
    Reader reader(data);
    ByteView list;
    if (!reader.vector(2, list) || reader.left() != 0)
        return make_error("the server_name extension's length does not match its list");
    if (list.empty()) return make_error("the server_name extension has an empty list");
    Reader entries(list);
    std::string host;
    bool found = false;
    while (entries.left() > 0) {
        std::uint8_t type = 0;
        ByteView name;
        if (!entries.u8(type) || !entries.vector(2, name))
            return make_error("the server_name extension has an entry running past its end");
        if (type != name_type_host_name) continue;  // no other type is defined; RFC 6066 has receivers skip them
        if (found) return make_error("the server_name extension names two host names");
        DSTACK_TRY(host, normalize_host_name(name));
        found = true;
    }
    if (!found) return make_error("the server_name extension has no host_name entry");
    return host;
}

Result<std::vector<std::string>> read_alpn(ByteView data) {
    Reader reader(data);
    ByteView list;
    if (!reader.vector(2, list) || reader.left() != 0)
        return make_error("the ALPN extension's length does not match its list");
    if (list.empty()) return make_error("the ALPN extension has an empty list");
    Reader entries(list);
    std::vector<std::string> protocols;
    while (entries.left() > 0) {
        ByteView name;
        if (!entries.vector(1, name)) return make_error("the ALPN extension has a protocol running past its end");
        if (name.empty()) return make_error("the ALPN extension has an empty protocol name");
        protocols.emplace_back(as_chars(name));
    }
    return protocols;
}

// The ClientHello's body, once all of it is there.
ClientHelloScan read_body(ByteView body) {
    Reader reader(body);
    std::uint16_t version = 0;
    ByteView random, session_id, cipher_suites, compression;
    if (!reader.u16(version) || !reader.take(32, random)) return invalid("the ClientHello is too short");
    if ((version >> 8) != 3) return invalid(fmt::format("the ClientHello's version 0x{:04x} is not TLS (3.x)", version));
    if (!reader.vector(1, session_id)) return invalid("the ClientHello's session id runs past its end");
    if (session_id.size() > 32) return invalid("the ClientHello's session id is longer than 32 bytes");
    if (!reader.vector(2, cipher_suites)) return invalid("the ClientHello's cipher suites run past its end");
    if (cipher_suites.empty() || cipher_suites.size() % 2 != 0)
        return invalid("the ClientHello's cipher suite list is empty or of odd length");
    if (!reader.vector(1, compression)) return invalid("the ClientHello's compression methods run past its end");
    if (compression.empty()) return invalid("the ClientHello lists no compression method");
    ClientHelloScan scan;
    scan.status = ClientHelloStatus::complete;
    if (reader.left() == 0) return scan;  // TLS 1.2 allows a hello without extensions
    ByteView extensions;
    if (!reader.vector(2, extensions) || reader.left() != 0)
        return invalid("the ClientHello's extensions length does not match the message length");
    Reader entries(extensions);
    std::vector<std::uint16_t> seen;
    while (entries.left() > 0) {
        std::uint16_t type = 0;
        ByteView data;
        if (!entries.u16(type) || !entries.vector(2, data))
            return invalid("a ClientHello extension runs past the extensions' end");
        // RFC 8446 §4.2: one extension of a type at most. Two server names would let two readers
        // (we and the TLS engine behind us) route and serve different names.
        if (std::find(seen.begin(), seen.end(), type) != seen.end())
            return invalid(fmt::format("the ClientHello has the extension {} twice", type));
        seen.push_back(type);
        if (type == extension_server_name) {
            auto name = read_server_name(data);
            if (!name) return invalid(name.error().message);
            scan.server_name = std::move(name).value();
        } else if (type == extension_alpn) {
            auto alpn = read_alpn(data);
            if (!alpn) return invalid(alpn.error().message);
            scan.alpn = std::move(alpn).value();
        }
    }
    return scan;
}

}  // namespace

ClientHelloScan scan_client_hello(ByteView bytes) {
    // The handshake message, reassembled from the payloads of the records received so far.
    Bytes message;
    std::size_t needed = 4;  // the handshake header; then the header and the length it declares
    std::size_t at = 0;      // where the current record starts
    // The hello's last byte must lie within the first max_client_hello_bytes; `next` is where
    // the next byte of it can arrive at the earliest, so an oversized hello fails as soon as its
    // length is declared, not after 16 KiB were read.
    auto too_large = [&](std::size_t next) { return next + (needed - message.size()) > max_client_hello_bytes; };
    for (int record = 1;; ++record) {
        if (bytes.size() > at && bytes[at] != content_type_handshake) {
            if (record == 1)
                return invalid(fmt::format("not a TLS handshake (the first byte is 0x{:02x}; TLS starts with 0x16)",
                                           bytes[at]));
            return invalid(fmt::format("TLS record {} of the ClientHello has content type {}, not handshake (22)",
                                       record, bytes[at]));
        }
        if (bytes.size() > at + 1 && bytes[at + 1] != 3)
            return invalid(fmt::format("{} (TLS record {} has version major {}, not 3)",
                                       record == 1 ? "not a TLS handshake" : "a malformed ClientHello", record,
                                       bytes[at + 1]));
        if (bytes.size() < at + 5) {
            if (too_large(at + 5)) return invalid("ClientHello larger than 16 KiB");
            return ClientHelloScan{};
        }
        std::size_t length = (std::size_t(bytes[at + 3]) << 8) | bytes[at + 4];
        if (length == 0) return invalid(fmt::format("TLS record {} of the ClientHello is empty", record));
        if (length > max_record_payload)
            return invalid(fmt::format("TLS record {} is {} bytes long (at most 16384)", record, length));
        std::size_t available = std::min(length, bytes.size() - (at + 5));
        std::size_t used = 0;  // of this record's payload
        auto append = [&](std::size_t count) {
            auto part = bytes.subspan(at + 5 + used, count);
            message.insert(message.end(), part.begin(), part.end());
            used += count;
        };
        append(std::min(available, needed - message.size()));
        if (!message.empty() && message[0] != handshake_client_hello)
            return invalid(fmt::format("not a TLS ClientHello (handshake message type {})", message[0]));
        if (needed == 4 && message.size() == 4) {
            std::size_t declared = (std::size_t(message[1]) << 16) | (std::size_t(message[2]) << 8) | message[3];
            if (declared < 2 + 32 + 1 + 2 + 1)
                return invalid(fmt::format("the ClientHello declares {} bytes, too short to be one", declared));
            needed = 4 + declared;
            // Checked here, and after each record, so that the same bytes give the same error
            // however they were split.
            if (too_large(at + 5 + used)) return invalid("ClientHello larger than 16 KiB");
            append(std::min(available - used, needed - message.size()));
        }
        if (message.size() == needed) {
            if (at + 5 + used > max_client_hello_bytes) return invalid("ClientHello larger than 16 KiB");
            break;
        }
        if (used < length) {  // the rest of this record has not arrived yet
            if (too_large(bytes.size())) return invalid("ClientHello larger than 16 KiB");
            return ClientHelloScan{};
        }
        at += 5 + length;
        if (too_large(at + 5)) return invalid("ClientHello larger than 16 KiB");
    }
    return read_body(ByteView(message).subspan(4));
}

}  // namespace dstack::net
