// The ClientHello scanner against hellos real clients sent, and hand-built edge cases.
//
// The captured hellos are our own bytes, recorded once on loopback with a Python socket that
// read the first flight of:
//   openssl s_client -servername x.example.com -alpn h2,http/1.1                        (OpenSSL 3.0.19)
//   curl https://X.Example.com:PORT/ --resolve X.Example.com:PORT:127.0.0.1             (curl 7.88.1)
//   openssl s_client -tls1_2 -noservername                                              (no SNI, no ALPN)
//   openssl s_client -servername frag.example.com -alpn h2,http/1.1,<12 long names> -max_send_frag 512
//     (the hello in two records, 512 + 423 bytes)
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dstack/base/hex.hpp"
#include "dstack/net/tls-client-hello.hpp"

using namespace dstack;
using namespace dstack::net;

namespace {

const char* const openssl_hello =
    "160301014c010001480303ab86ce21da8b91fb3d7c5349124849d487d709a28e926a3c8db8bced3413351620383ddc85"
    "7404ee1acf868dc625fda01bfd5781ddc79b5ab16d90aa99a974355b003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000c1"
    "00000012001000000d782e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900180100"
    "0101010201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a002804030503"
    "0603080708080809080a080b080408050806040105010601030303010302040205020602002b00090803040303030203"
    "01002d00020101003300260024001d00202a71ed600e83828ca19adf73436b9642f9e752962dc82903bbd8be5c1d546c"
    "51";
const char* const curl_hello =
    "1603010200010001fc030389cab94fc9c5bb15662eba5badca9940de2dfc6e6ee7fae9cba379d6f5d4c6a92092155dab"
    "cce9498cf5a3eff1f29fa2368c26990e488e27a218299fd250c4778e003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175"
    "00000012001000000d782e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900180100"
    "01010102010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a002804030503"
    "0603080708080809080a080b080408050806040105010601030303010302040205020602002b00090803040303030203"
    "01002d00020101003300260024001d00206b86177df7785464bd0faaff205ce5820539e6b799caaa5faad13fe1a0e02c"
    "53001500b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000";
const char* const openssl_tls12_no_sni_hello =
    "16030100b7010000b303034b65fbbba460130b1a6098f50435eeae1453ef7b228a2ffe2670c3b9c3a5bc41000038c02c"
    "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
    "0035002f00ff01000052000b000403000102000a000c000a001d0017001e00190018002300000016000000170000000d"
    "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";
const char* const openssl_two_record_hello =
    "1603010200010003a30303146a8ec18955ea3c011848c5d1cdba4a5215f36eee2d4dd9ccaccb5402f5170020bae0a281"
    "e47e01adad008144073569ae3ad1c6a5a4841e197fbf00ce5d31b876003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff0100031c"
    "000000150013000010667261672e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900"
    "18010001010102010301040023000000100266026402683208687474702f312e313170726f746f2d30302d7878787878"
    "78787878787878787878787878787878787878787878787878787878787878787878783170726f746f2d30312d787878"
    "787878787878787878787878787878787878787878787878787878787878787878787878783170726f746f2d30322d78"
    "7878787878787878787878787878787878787878787878787878787878787878787878787878783170726f746f2d3033"
    "2d787878787878787878787878787878787878787878787878787878787878787878787878787878783170726f746f2d"
    "30342d787878787878787878787878787878787878787878787878787878787878787878787878787878783170726f74"
    "6f2d30352d787878787878787878787878787878787878787878787878787878787878787816030101a7787878787878"
    "78783170726f746f2d30362d787878787878787878787878787878787878787878787878787878787878787878787878"
    "787878783170726f746f2d30372d78787878787878787878787878787878787878787878787878787878787878787878"
    "7878787878783170726f746f2d30382d7878787878787878787878787878787878787878787878787878787878787878"
    "78787878787878783170726f746f2d30392d787878787878787878787878787878787878787878787878787878787878"
    "787878787878787878783170726f746f2d31302d78787878787878787878787878787878787878787878787878787878"
    "7878787878787878787878783170726f746f2d31312d7878787878787878787878787878787878787878787878787878"
    "78787878787878787878787878780016000000170000000d002a0028040305030603080708080809080a080b08040805"
    "0806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00"
    "206148cd57511552765cc39b43edf569a07d93ccbbb2b3c1e48abb83b27ca83a59";

Bytes unhex(const char* text) {
    auto bytes = hex_decode(text);
    REQUIRE(bytes.ok());
    return *bytes;
}

void put16(Bytes& out, std::size_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value));
}

Bytes extension(std::uint16_t type, const Bytes& data) {
    Bytes out;
    put16(out, type);
    put16(out, data.size());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

// server_name with one host_name entry per name.
Bytes sni(std::vector<std::string> names, std::uint8_t name_type = 0) {
    Bytes list;
    for (auto& name : names) {
        list.push_back(name_type);
        put16(list, name.size());
        list.insert(list.end(), name.begin(), name.end());
    }
    Bytes data;
    put16(data, list.size());
    data.insert(data.end(), list.begin(), list.end());
    return extension(0, data);
}

Bytes alpn(std::vector<std::string> protocols) {
    Bytes list;
    for (auto& protocol : protocols) {
        list.push_back(static_cast<std::uint8_t>(protocol.size()));
        list.insert(list.end(), protocol.begin(), protocol.end());
    }
    Bytes data;
    put16(data, list.size());
    data.insert(data.end(), list.begin(), list.end());
    return extension(16, data);
}

// A ClientHello handshake message (header included) with these extensions; none at all when
// `with_extensions` is false (TLS 1.2 allows that).
Bytes hello_message(const Bytes& extensions, bool with_extensions = true) {
    Bytes body = {0x03, 0x03};
    body.insert(body.end(), 32, 0xAB);             // random
    body.push_back(0);                             // session id
    body.insert(body.end(), {0x00, 0x02, 0x13, 0x01});  // one cipher suite
    body.insert(body.end(), {0x01, 0x00});         // null compression
    if (with_extensions) {
        put16(body, extensions.size());
        body.insert(body.end(), extensions.begin(), extensions.end());
    }
    Bytes message = {0x01, static_cast<std::uint8_t>(body.size() >> 16), static_cast<std::uint8_t>(body.size() >> 8),
                     static_cast<std::uint8_t>(body.size())};
    message.insert(message.end(), body.begin(), body.end());
    return message;
}

// The message in handshake records of at most `fragment` bytes each.
Bytes records(const Bytes& message, std::size_t fragment = 16384) {
    Bytes out;
    for (std::size_t at = 0; at < message.size(); at += fragment) {
        std::size_t size = std::min(fragment, message.size() - at);
        out.insert(out.end(), {0x16, 0x03, 0x01});
        put16(out, size);
        out.insert(out.end(), message.begin() + static_cast<std::ptrdiff_t>(at),
                   message.begin() + static_cast<std::ptrdiff_t>(at + size));
    }
    return out;
}

Bytes concat_all(std::vector<Bytes> parts) {
    Bytes out;
    for (auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

ClientHelloScan scan(const Bytes& bytes) { return scan_client_hello(ByteView(bytes)); }

// Every proper prefix is need_more; the whole is the result; bytes after it change nothing.
ClientHelloScan scan_every_split(const Bytes& wire) {
    for (std::size_t size = 0; size < wire.size(); ++size) {
        auto partial = scan_client_hello(ByteView(wire).first(size));
        CAPTURE(size);
        REQUIRE_MESSAGE(partial.status == ClientHelloStatus::need_more, partial.error);
    }
    auto whole = scan(wire);
    Bytes more = wire;
    more.insert(more.end(), {0x17, 0x03, 0x03, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'});
    auto with_more = scan(more);
    CHECK(with_more.status == whole.status);
    CHECK(with_more.server_name == whole.server_name);
    CHECK(with_more.alpn == whole.alpn);
    return whole;
}

std::string invalid_reason(const Bytes& wire) {
    auto result = scan(wire);
    REQUIRE(result.status == ClientHelloStatus::invalid);
    CHECK(result.server_name.empty());
    return result.error;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tls client hello: OpenSSL s_client's hello gives its SNI and ALPN, and no prefix of it is final") {
    auto result = scan_every_split(unhex(openssl_hello));
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name == "x.example.com");
    CHECK(result.alpn == std::vector<std::string>{"h2", "http/1.1"});
    CHECK(result.error.empty());
}

TEST_CASE("tls client hello: curl's hello (its SNI typed in capitals on the command line)") {
    auto result = scan_every_split(unhex(curl_hello));
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name == "x.example.com");
    CHECK(result.alpn == std::vector<std::string>{"h2", "http/1.1"});
}

TEST_CASE("tls client hello: a TLS 1.2 hello without SNI or ALPN is complete with both empty") {
    auto result = scan_every_split(unhex(openssl_tls12_no_sni_hello));
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name.empty());
    CHECK(result.alpn.empty());
}

TEST_CASE("tls client hello: OpenSSL's hello in two records is reassembled") {
    Bytes wire = unhex(openssl_two_record_hello);
    REQUIRE(wire.size() == 945);
    REQUIRE(wire[3] == 0x02);  // the first record is 512 bytes: the capture is really split
    REQUIRE(wire[4] == 0x00);
    auto result = scan_every_split(wire);
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name == "frag.example.com");
    REQUIRE(result.alpn.size() == 14);
    CHECK(result.alpn[0] == "h2");
    CHECK(result.alpn[1] == "http/1.1");
    CHECK(result.alpn[13] == "proto-11-" + std::string(40, 'x'));
}

TEST_CASE("tls client hello: a hand-built hello gives the same answer in records of any size") {
    Bytes message = hello_message(concat_all({sni({"Svc-8443s.Example.COM."}), alpn({"h2"})}));
    for (std::size_t fragment : {1, 2, 3, 4, 5, 7, 16, 41, 42, 43, 100}) {
        CAPTURE(fragment);
        auto result = scan_every_split(records(message, fragment));
        REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
        CHECK(result.server_name == "svc-8443s.example.com");  // lowercased, the trailing dot dropped
        CHECK(result.alpn == std::vector<std::string>{"h2"});
    }
}

TEST_CASE("tls client hello: a hello without any extension is complete") {
    auto result = scan_every_split(records(hello_message({}, false)));
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name.empty());
    CHECK(result.alpn.empty());
}

TEST_CASE("tls client hello: HTTP or other garbage is refused at the first byte, not waited on") {
    for (std::string text : {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "G", "\x80", "SSH-2.0-OpenSSH\r\n", "\x15\x03\x03"}) {
        CAPTURE(text);
        Bytes wire = to_bytes(text);
        std::string why = invalid_reason(Bytes(wire.begin(), wire.begin() + 1));
        CHECK(contains(why, "not a TLS handshake"));
        CHECK(invalid_reason(wire) == why);
    }
    // Handshake content type but not TLS's version 3.x, or a ServerHello instead of a ClientHello.
    CHECK(contains(invalid_reason({0x16, 0x02}), "not a TLS handshake"));
    CHECK(contains(invalid_reason({0x16, 0x03, 0x01, 0x00, 0x30, 0x02}), "not a TLS ClientHello (handshake message type 2)"));
}

TEST_CASE("tls client hello: every record of the hello must be a handshake record of 1..16384 bytes") {
    Bytes message = hello_message(sni({"a.example"}));
    Bytes two = records(message, 20);
    Bytes second_is_data = two;
    second_is_data[25] = 0x17;  // application data in the middle of the hello
    CHECK(contains(invalid_reason(second_is_data), "TLS record 2 of the ClientHello has content type 23"));
    Bytes second_bad_version = two;
    second_bad_version[26] = 0x04;
    CHECK(contains(invalid_reason(second_bad_version), "version major 4"));
    CHECK(contains(invalid_reason({0x16, 0x03, 0x01, 0x00, 0x00}), "is empty"));
    CHECK(contains(invalid_reason({0x16, 0x03, 0x01, 0x40, 0x01}), "16385 bytes long"));
    CHECK(scan(Bytes{0x16, 0x03, 0x01, 0x40, 0x00}).status == ClientHelloStatus::need_more);
}

TEST_CASE("tls client hello: larger than 16 KiB on the wire is refused as soon as the length says so") {
    // The padding extension (21) brings the hello's last byte to exactly the limit, then one past.
    Bytes base = hello_message(sni({"big.example"}));
    std::size_t fixed = 5 + base.size() + 4;  // record header, message, padding extension header
    for (std::size_t overshoot : {0, 1}) {
        CAPTURE(overshoot);
        Bytes padding(max_client_hello_bytes - fixed + overshoot, 0);
        Bytes wire = records(hello_message(concat_all({sni({"big.example"}), extension(21, padding)})));
        REQUIRE(wire.size() == max_client_hello_bytes + overshoot);
        auto result = scan(wire);
        if (overshoot == 0) {
            REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
            CHECK(result.server_name == "big.example");
        } else {
            REQUIRE(result.status == ClientHelloStatus::invalid);
            CHECK(result.error == "ClientHello larger than 16 KiB");
            // Known from the handshake header already (9 bytes in), not after 16 KiB arrived.
            auto early = scan_client_hello(ByteView(wire).first(9));
            CHECK(early.status == ClientHelloStatus::invalid);
            CHECK(early.error == "ClientHello larger than 16 KiB");
            CHECK(scan_client_hello(ByteView(wire).first(8)).status == ClientHelloStatus::need_more);
        }
    }
    // In records of 1000 bytes the record headers count too: the same hello no longer fits.
    Bytes padding(max_client_hello_bytes - fixed, 0);
    Bytes message = hello_message(concat_all({sni({"big.example"}), extension(21, padding)}));
    CHECK(invalid_reason(records(message, 1000)) == "ClientHello larger than 16 KiB");
    // The same refusal however the bytes are split, even when a later record is malformed too
    // (found by fuzz-tls-client-hello: the whole input was refused for record 2's content type,
    // its prefixes for the size).
    Bytes huge = records(Bytes{0x01, 0xa1, 0x00, 0x01});
    huge[4] = 20;  // the record holds 20 bytes: the header and 16 of the body
    huge.insert(huge.end(), 16, 0xAB);
    huge.insert(huge.end(), {0x00, 0x03, 0x01, 0x00, 0x10});
    for (std::size_t size = 9; size <= huge.size(); ++size) {
        CAPTURE(size);
        auto result = scan_client_hello(ByteView(huge).first(size));
        CHECK(result.error == "ClientHello larger than 16 KiB");
    }
    // A declared length of 2^24-1: refused at once.
    CHECK(invalid_reason({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff}) == "ClientHello larger than 16 KiB");
}

TEST_CASE("tls client hello: inconsistent lengths inside the hello are refused") {
    Bytes good = hello_message(concat_all({sni({"a.example"}), alpn({"h2"})}));
    REQUIRE(scan(records(good)).status == ClientHelloStatus::complete);
    // The declared handshake length shorter than any ClientHello.
    CHECK(contains(invalid_reason({0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 3, 3, 0, 0}), "too short"));
    // The extensions' total length one more, or one less, than what follows.
    std::size_t extensions_length_at = 4 + 2 + 32 + 1 + 4 + 2;
    for (int delta : {-1, 1}) {
        Bytes message = good;
        message[extensions_length_at + 1] = static_cast<std::uint8_t>(message[extensions_length_at + 1] + delta);
        CAPTURE(delta);
        invalid_reason(records(message));
    }
    // The server_name list length off by one.
    Bytes bad_list = sni({"a.example"});
    bad_list[5] += 1;
    CHECK(contains(invalid_reason(records(hello_message(bad_list))), "server_name"));
    // A host_name entry longer than the list.
    Bytes bad_entry = sni({"a.example"});
    bad_entry[8] += 1;
    CHECK(contains(invalid_reason(records(hello_message(bad_entry))), "server_name"));
    // An extension longer than the extensions block.
    Bytes cut = extension(13, Bytes(4, 0));
    cut[3] = 9;
    invalid_reason(records(hello_message(cut)));
    // ALPN: an empty list, an empty name, a name running past the list.
    CHECK(contains(invalid_reason(records(hello_message(extension(16, {0, 0})))), "ALPN extension has an empty list"));
    CHECK(contains(invalid_reason(records(hello_message(alpn({"h2", ""})))), "empty protocol name"));
    Bytes alpn_overrun = alpn({"h2"});
    alpn_overrun[6] = 5;
    CHECK(contains(invalid_reason(records(hello_message(alpn_overrun))), "ALPN"));
    // An odd-length cipher suite list.
    Bytes odd = good;
    odd[4 + 2 + 32 + 1 + 1] = 3;
    invalid_reason(records(odd));
}

TEST_CASE("tls client hello: a server name or ALPN extension given twice is refused") {
    CHECK(contains(invalid_reason(records(hello_message(concat_all({sni({"a.example"}), sni({"b.example"})})))),
                   "extension 0 twice"));
    CHECK(contains(invalid_reason(records(hello_message(concat_all({alpn({"h2"}), alpn({"http/1.1"})})))),
                   "extension 16 twice"));
    CHECK(contains(invalid_reason(records(hello_message(sni({"a.example", "b.example"})))), "two host names"));
    // An entry of another name type is skipped (RFC 6066 defines none; receivers ignore them).
    Bytes other_type = sni({"ignored"}, 7);
    Bytes both = sni({"a.example"});
    Bytes mixed = extension(0, concat_all({{0x00, static_cast<std::uint8_t>(both.size() - 6 + other_type.size() - 6)},
                                           Bytes(other_type.begin() + 6, other_type.end()),
                                           Bytes(both.begin() + 6, both.end())}));
    auto result = scan(records(hello_message(mixed)));
    REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
    CHECK(result.server_name == "a.example");
    CHECK(contains(invalid_reason(records(hello_message(sni({"ignored"}, 7)))), "no host_name entry"));
}

TEST_CASE("tls client hello: the host name must be an ASCII DNS name") {
    auto name_of = [](const std::string& name) { return scan(records(hello_message(sni({name})))); };
    std::string label63(63, 'a');
    for (auto [name, expected] : std::vector<std::pair<std::string, std::string>>{
             {"x.example.com", "x.example.com"},
             {"X.EXAMPLE.com.", "x.example.com"},
             {"_acme-challenge.a-b.example", "_acme-challenge.a-b.example"},
             {label63 + ".example", label63 + ".example"},
             {"localhost", "localhost"},
             {"1.2.3.4", "1.2.3.4"},
         }) {
        auto result = name_of(name);
        CAPTURE(name);
        REQUIRE_MESSAGE(result.status == ClientHelloStatus::complete, result.error);
        CHECK(result.server_name == expected);
    }
    // 253 characters is the longest name; with the trailing dot it is 254 bytes and still fine.
    std::string longest = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    REQUIRE(longest.size() == 253);
    CHECK(name_of(longest).server_name == longest);
    CHECK(name_of(longest + ".").server_name == longest);
    for (auto [name, reason] : std::vector<std::pair<std::string, std::string>>{
             {"", "is empty"},
             {".", "is empty"},
             {"a..example", "empty label"},
             {".example", "empty label"},
             {"a.example..", "empty label"},
             {label63 + "a.example", "longer than 63"},
             {longest + "b", "at most 253"},
             {"caf\xc3\xa9.example", "byte 0xc3"},
             {"a b.example", "byte 0x20"},
             {"a/b.example", "byte 0x2f"},
             {std::string("a\0b.example", 11), "byte 0x00"},
         }) {
        auto result = name_of(name);
        CAPTURE(name);
        REQUIRE(result.status == ClientHelloStatus::invalid);
        CHECK_MESSAGE(contains(result.error, reason), result.error);
        CHECK(result.server_name.empty());
    }
}
