#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../vectors.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/quote.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

Bytes unhex(std::string_view text) {
    auto bytes = hex_decode(text);
    REQUIRE(bytes.ok());
    return *bytes;
}

template <std::size_t N>
Fixed<N> fixed_hex(std::string_view text) {
    auto bytes = unhex(text);
    REQUIRE(bytes.size() == N);
    Fixed<N> out{};
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return out;
}

crypto::Certificate pck_leaf_of(const std::string& vector) {
    auto bytes = read_file(vector_path(vector), 1 << 20);
    REQUIRE(bytes.ok());
    auto quote = parse_quote(*bytes);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    auto chain = crypto::Certificate::chain_from_pem(as_chars(quote->auth.certification_data));
    REQUIRE(chain.ok());
    REQUIRE(chain->size() == 3);
    return chain->front();
}

std::string error_of(const Result<PckExtension>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// A small DER builder for malformed extensions (the arcs used here are all below 128).
Bytes tlv(std::uint8_t tag, ByteView content) {
    REQUIRE(content.size() < 0x10000);
    Bytes out{tag};
    if (content.size() < 0x80) {
        out.push_back(static_cast<std::uint8_t>(content.size()));
    } else {
        out.push_back(0x82);
        out.push_back(static_cast<std::uint8_t>(content.size() >> 8));
        out.push_back(static_cast<std::uint8_t>(content.size()));
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

Bytes sequence(const std::vector<Bytes>& items) {
    Bytes content;
    for (const auto& item : items) content.insert(content.end(), item.begin(), item.end());
    return tlv(0x30, content);
}

Bytes sgx_entry(std::initializer_list<std::uint8_t> arcs, const Bytes& value) {
    Bytes oid = unhex("2a864886f84d010d01");
    oid.insert(oid.end(), arcs.begin(), arcs.end());
    return sequence({tlv(0x06, oid), value});
}

Bytes octets(std::string_view hex_text) { return tlv(0x04, unhex(hex_text)); }
Bytes integer(std::string_view hex_text) { return tlv(0x02, unhex(hex_text)); }

struct Parts {
    Bytes ppid = sgx_entry({1}, octets("00112233445566778899aabbccddeeff"));
    std::vector<Bytes> tcb;
    Bytes pce_id = sgx_entry({3}, octets("0000"));
    Bytes fmspc = sgx_entry({4}, octets("00906ea10000"));
    Bytes sgx_type = sgx_entry({5}, tlv(0x0A, unhex("00")));
    std::vector<Bytes> extra;

    Parts() {
        for (std::uint8_t arc = 1; arc <= 16; ++arc) tcb.push_back(sgx_entry({2, arc}, integer("05")));
        tcb.push_back(sgx_entry({2, 17}, integer("0d")));
        tcb.push_back(sgx_entry({2, 18}, octets("05050505050505050505050505050505")));
    }

    Bytes build() const {
        std::vector<Bytes> top;
        for (const auto& item : {ppid, sgx_entry({2}, sequence(tcb)), pce_id, fmspc, sgx_type}) {
            if (!item.empty()) top.push_back(item);
        }
        top.insert(top.end(), extra.begin(), extra.end());
        return sequence(top);
    }
};

}  // namespace

TEST_CASE("PCK extension: the real TDX quote's PCK certificate" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto leaf = pck_leaf_of("dcap-qvl/tdx_quote");
    auto extension = parse_pck_extension(leaf);
    REQUIRE_MESSAGE(extension.ok(), (extension.ok() ? "" : extension.error().message));
    CHECK(hex_encode(extension->fmspc) == "b0c06f000000");
    CHECK(hex_encode(extension->cpu_svn) == "03030202040100050000000000000000");
    CHECK(extension->pce_svn == 11);
    CHECK(hex_encode(extension->ppid) == "811dca2a26b952e85bb6448b097ba4fd");
    CHECK(hex_encode(extension->pce_id) == "0000");
    CHECK(extension->sgx_type == 1);
    // A Platform-CA certificate carries the platform instance id (and a configuration entry we skip).
    REQUIRE(extension->platform_instance_id.has_value());
    CHECK(hex_encode(*extension->platform_instance_id) == "07828474603e7019dc930775ffe8cdd2");
    CHECK(pck_ca_kind(leaf) == "platform");
}

TEST_CASE("PCK extension: the real SGX quote's PCK certificate" * doctest::skip(vector_missing("dcap-qvl/sgx_quote"))) {
    auto leaf = pck_leaf_of("dcap-qvl/sgx_quote");
    auto extension = parse_pck_extension(leaf);
    REQUIRE_MESSAGE(extension.ok(), (extension.ok() ? "" : extension.error().message));
    CHECK(hex_encode(extension->fmspc) == "00a067110000");
    CHECK(extension->ppid.size() == 16);
    CHECK_FALSE(extension->platform_instance_id.has_value());
    CHECK(extension->sgx_type == 0);
    CHECK(pck_ca_kind(leaf) == "processor");
    // Processor-CA extensions hold nothing we do not model: encoding gives Intel's bytes back.
    auto original = leaf.extension(sgx_extension_oid);
    REQUIRE(original.has_value());
    CHECK(encode_pck_extension_value(*extension, extension->cpu_svn) == *original);
}

TEST_CASE("PCK extension: every truncation of a real value fails" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto value = pck_leaf_of("dcap-qvl/tdx_quote").extension(sgx_extension_oid);
    REQUIRE(value.has_value());
    REQUIRE(parse_pck_extension_value(*value).ok());
    for (std::size_t length = 0; length < value->size(); ++length) {
        CAPTURE(length);
        CHECK_FALSE(parse_pck_extension_value(ByteView(*value).first(length)).ok());
    }
    auto longer = *value;
    longer.push_back(0);
    CHECK_FALSE(parse_pck_extension_value(longer).ok());
}

TEST_CASE("PCK extension: encoding round-trips") {
    PckExtension extension;
    extension.ppid = unhex("d04ec06d4e6d92dc90d0ad3cf5ee2ddf");
    extension.cpu_svn = fixed_hex<16>("0b0b0202ff0100000000000000000000");
    extension.pce_id = fixed_hex<2>("0000");
    extension.fmspc = fixed_hex<6>("00906ea10000");
    auto components = extension.cpu_svn;

    for (std::uint16_t pce_svn : {0, 13, 0x7F, 0x80, 0x1234, 0x7FFF}) {
        for (int sgx_type : {0, 1, 2}) {
            for (bool with_instance_id : {false, true}) {
                CAPTURE(pce_svn);
                CAPTURE(sgx_type);
                extension.pce_svn = pce_svn;
                extension.sgx_type = sgx_type;
                extension.platform_instance_id.reset();
                if (with_instance_id) extension.platform_instance_id = Bytes(16, 0x9C);
                auto parsed = parse_pck_extension_value(encode_pck_extension_value(extension, components));
                REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
                CHECK(parsed->ppid == extension.ppid);
                CHECK(parsed->cpu_svn == extension.cpu_svn);
                CHECK(parsed->pce_svn == pce_svn);
                CHECK(parsed->pce_id == extension.pce_id);
                CHECK(parsed->fmspc == extension.fmspc);
                CHECK(parsed->sgx_type == sgx_type);
                CHECK(parsed->platform_instance_id == extension.platform_instance_id);
            }
        }
    }
}

TEST_CASE("PCK extension: in an issued certificate") {
    PckExtension extension;
    extension.ppid = Bytes(16, 0x01);
    extension.cpu_svn = fixed_hex<16>("03030202040100050000000000000000");
    extension.pce_svn = 11;
    extension.fmspc = fixed_hex<6>("b0c06f000000");
    extension.sgx_type = 1;

    auto key = crypto::P256PrivateKey::generate();
    REQUIRE(key.ok());
    crypto::CertificateSpec spec;
    spec.subject = {"Intel Corporation", "Intel SGX PCK Certificate"};
    spec.not_before = system_now() - 3600;
    spec.not_after = system_now() + 86400;
    spec.extensions.push_back({std::string(sgx_extension_oid), encode_pck_extension_value(extension, extension.cpu_svn)});
    auto der = crypto::write_self_signed_certificate(spec, *key);
    REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));
    auto certificate = crypto::Certificate::from_der(*der);
    REQUIRE(certificate.ok());

    auto parsed = parse_pck_extension(*certificate);
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
    CHECK(parsed->fmspc == extension.fmspc);
    CHECK(parsed->cpu_svn == extension.cpu_svn);
    CHECK(parsed->pce_svn == 11);
    CHECK(parsed->sgx_type == 1);
    // Neither word in the issuer name: Intel's legacy default.
    CHECK(pck_ca_kind(*certificate) == "processor");

    spec.subject.common_name = "Intel SGX PCK Platform CA";
    spec.extensions.clear();
    auto platform_der = crypto::write_self_signed_certificate(spec, *key);
    REQUIRE(platform_der.ok());
    auto platform = crypto::Certificate::from_der(*platform_der);
    REQUIRE(platform.ok());
    CHECK(pck_ca_kind(*platform) == "platform");
    CHECK(error_of(parse_pck_extension(*platform)) == "Intel extension not found");
}

TEST_CASE("PCK extension: malformed values") {
    Parts parts;
    REQUIRE(parse_pck_extension_value(parts.build()).ok());

    SUBCASE("FMSPC must be 6 bytes") {
        parts.fmspc = sgx_entry({4}, octets("00906ea100"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "Fmspc length mismatch"));
    }
    SUBCASE("CPUSVN must be 16 bytes") {
        parts.tcb[17] = sgx_entry({2, 18}, octets("050505050505050505050505050505"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "CpuSvn length mismatch"));
    }
    SUBCASE("PCESVN must be 1 or 2 bytes") {
        parts.tcb[16] = sgx_entry({2, 17}, integer("00ffff"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "PceSvn length mismatch"));
        parts.tcb[16] = sgx_entry({2, 17}, integer("80"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "PceSvn length mismatch"));
        parts.tcb[16] = sgx_entry({2, 17}, integer("0100"));
        auto parsed = parse_pck_extension_value(parts.build());
        REQUIRE(parsed.ok());
        CHECK(parsed->pce_svn == 256);
    }
    SUBCASE("required entries") {
        parts.fmspc.clear();
        CHECK(error_of(parse_pck_extension_value(parts.build())) ==
              "Intel extension path [1.2.840.113741.1.13.1.4] is missing");
        parts = Parts();
        parts.ppid.clear();
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "[1.2.840.113741.1.13.1.1] is missing"));
        parts = Parts();
        parts.sgx_type.clear();
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "[1.2.840.113741.1.13.1.5] is missing"));
        parts = Parts();
        parts.tcb.pop_back();
        CHECK(error_of(parse_pck_extension_value(parts.build())) ==
              "Intel extension path [1.2.840.113741.1.13.1.2, 1.2.840.113741.1.13.1.2.18] is missing");
        parts = Parts();
        parts.tcb.erase(parts.tcb.begin() + 3);
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "1.2.840.113741.1.13.1.2.4] is missing"));
    }
    SUBCASE("duplicate OIDs") {
        parts.extra.push_back(sgx_entry({4}, octets("b0c06f000000")));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "duplicate entry 1.2.840.113741.1.13.1.4"));
        parts = Parts();
        parts.tcb.push_back(parts.tcb[0]);
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "duplicate entry 1.2.840.113741.1.13.1.2.1"));
    }
    SUBCASE("TCB entries") {
        parts.tcb.push_back(sgx_entry({2, 19}, integer("00")));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "unexpected TCB entry"));
        parts = Parts();
        parts.tcb[0] = sgx_entry({2, 1}, integer("0100"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "TCB component 1"));
        parts.tcb[0] = sgx_entry({2, 1}, octets("01"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "is not an INTEGER"));
    }
    SUBCASE("value types") {
        parts.fmspc = sgx_entry({4}, integer("00906ea10000"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "is not an OCTET STRING"));
        parts = Parts();
        parts.sgx_type = sgx_entry({5}, integer("00"));
        CHECK(contains(error_of(parse_pck_extension_value(parts.build())), "is not an ENUMERATED"));
    }
    SUBCASE("unknown top-level entries are skipped") {
        parts.extra.push_back(sgx_entry({7}, sequence({sgx_entry({7, 1}, tlv(0x01, unhex("ff")))})));
        CHECK(parse_pck_extension_value(parts.build()).ok());
    }
    SUBCASE("not a sequence") {
        CHECK_FALSE(parse_pck_extension_value(Bytes{}).ok());
        CHECK_FALSE(parse_pck_extension_value(octets("00")).ok());
        CHECK_FALSE(parse_pck_extension_value(sequence({tlv(0x06, unhex("2a864886f84d010d0101"))})).ok());
    }
}
