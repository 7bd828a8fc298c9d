// SignCert's CSRs (spec/kms.md §2.7, spec/agent.md §6.4.3): upstream's SCALE layouts, byte for
// byte, every refusal of the strict decoder, and the request checks (confirm, key, signature).
#include <doctest/doctest.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/cert-signing-request.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/scale.hpp"
#include "dstack/crypto/secp256k1.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::crypto::test::vector_missing;

namespace {

constexpr const char* attestation_vector = "dstack/attestation.bin";

// The SPKI of the P-256 generator G (the key whose scalar is 1).
constexpr std::string_view generator_spki =
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
    "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

tee::Evidence small_evidence() {
    tee::Evidence evidence;
    evidence.quote = Bytes(100, 0x5a);
    tee::TdxEvent acpi;
    acpi.imr = 0;
    acpi.event_type = 10;
    acpi.digest = Bytes(48, 1);
    acpi.event = "acpi-loader";
    acpi.event_payload = to_bytes("ACPI DATA");
    evidence.event_log = {acpi};
    tee::TdxEvent runtime;
    runtime.imr = 3;
    runtime.event_type = tee::runtime_event_type;
    runtime.event = "app-id";
    runtime.event_payload = Bytes(20, 2);
    runtime.digest = tee::runtime_event_digest(runtime.event, runtime.event_payload, 1);
    evidence.runtime_events = std::vector<tee::TdxEvent>{runtime};
    evidence.report_data = Bytes(64, 3);
    evidence.vm_config = R"({"cpu_count":2})";
    return evidence;
}

app::CertSigningRequest sample_request(const crypto::P256PrivateKey& key) {
    app::CertSigningRequest request;
    request.pubkey = key.spki_der();
    request.config.org_name = "Acme";
    request.config.subject = "app.example.com";
    request.config.subject_alt_names = {"app.example.com", "10.0.0.1"};
    request.config.usage_server_auth = true;
    request.config.usage_client_auth = true;
    request.config.ext_quote = true;
    request.config.ext_app_info = true;
    request.config.not_before = 1700000000;
    request.config.not_after = 1800000000;
    request.attestation = tee::encode_v0_attestation(small_evidence());
    return request;
}

crypto::P256PrivateKey new_key() {
    auto key = crypto::P256PrivateKey::generate();
    REQUIRE(key);
    return *key;
}

template <typename T>
std::string error_of(const Result<T>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

// The hand-computed V2 CSR below, its fields as encode_cert_signing_request takes them.
app::CertSigningRequest fixed_request() {
    app::CertSigningRequest request;
    request.pubkey = unhex(generator_spki);
    request.config.org_name = "Acme";
    request.config.subject = "a.test";
    request.config.subject_alt_names = {"a.test"};
    request.config.usage_server_auth = true;
    request.config.ext_quote = true;
    request.config.not_after = 1700000000;
    request.attestation = {0x00, 0xaa};
    return request;
}

// Written by hand from the SCALE rules (parity-scale-codec): a String or Vec<u8> is its Compact
// length then its bytes, Compact n < 64 is the byte n<<2, 64 <= n < 2^14 the u16le (n<<2)|1; an
// Option is 00, or 01 then the value; a bool one byte; a u64 eight bytes little-endian.
const std::string fixed_csr_hex = std::string("44") + "706c65617365207369676e20636572743a"  // confirm: 17 << 2 = 0x44
                                  + "6d01" + std::string(generator_spki)  // pubkey: 91 bytes, (91 << 2) | 1 = 0x016d
                                  + "01" + "10" + "41636d65"              // org_name: Some("Acme")
                                  + "18" + "612e74657374"                  // subject: "a.test", 6 << 2 = 0x18
                                  + "04" + "18612e74657374"                // subject_alt_names: ["a.test"]
                                  + "01" + "00" + "01"                     // server auth, client auth, ext_quote
                                  + "00"                                   // ext_app_info
                                  + "00"                                   // not_before: None
                                  + "01" + "00f1536500000000"              // not_after: Some(1700000000 = 0x6553f100)
                                  + "00aa";                                // attestation: the rest, raw

// Offsets in the fixed CSR: confirm 0..18, pubkey 18..111, org_name 111..117, subject 117..124.
constexpr std::size_t fixed_subject_offset = 117;

Bytes with_replaced(const Bytes& bytes, std::size_t at, std::size_t length, const Bytes& replacement) {
    Bytes out(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
    out.insert(out.end(), replacement.begin(), replacement.end());
    out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at + length), bytes.end());
    return out;
}

}  // namespace

TEST_CASE("csr: a hand-computed V2 CSR, encoded and decoded") {
    const Bytes expected = unhex(fixed_csr_hex);
    CHECK(app::encode_cert_signing_request(fixed_request()) == expected);
    auto decoded = app::decode_cert_signing_request(2, expected);
    REQUIRE_MESSAGE(decoded, (decoded ? "" : decoded.error().message));
    CHECK(decoded->version == 2);
    CHECK(decoded->confirm == "please sign cert:");
    CHECK(decoded->pubkey == unhex(generator_spki));
    CHECK(decoded->config.org_name == std::optional<std::string>("Acme"));
    CHECK(decoded->config.subject == "a.test");
    CHECK(decoded->config.subject_alt_names == std::vector<std::string>{"a.test"});
    CHECK(decoded->config.usage_server_auth);
    CHECK_FALSE(decoded->config.usage_client_auth);
    CHECK(decoded->config.ext_quote);
    CHECK_FALSE(decoded->config.ext_app_info);
    CHECK_FALSE(decoded->config.not_before);
    CHECK(decoded->config.not_after == std::optional<std::uint64_t>(1700000000));
    CHECK(decoded->attestation == Bytes{0x00, 0xaa});
    CHECK(decoded->quote.empty());
}

TEST_CASE("csr: V2 and V1 round trips, signed and checked") {
    auto key = new_key();
    auto request = sample_request(key);
    auto signed_csr = app::sign_cert_signing_request(request, key);
    REQUIRE(signed_csr);
    auto checked = app::decode_sign_cert_request(2, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(checked, (checked ? "" : checked.error().message));
    CHECK(checked->csr.config.org_name == request.config.org_name);
    CHECK(checked->csr.config.subject == request.config.subject);
    CHECK(checked->csr.config.subject_alt_names == request.config.subject_alt_names);
    CHECK(checked->csr.config.ext_app_info);
    CHECK(checked->csr.config.not_before == request.config.not_before);
    CHECK(checked->csr.config.not_after == request.config.not_after);
    CHECK(checked->csr.attestation == request.attestation);
    CHECK(checked->public_key == key.public_key());
    // The evidence is the attestation's, bound to the CSR key for the verifier's report-data check.
    CHECK(checked->evidence.source == "SignCert CSR (V0 attestation)");
    CHECK(checked->evidence.quote == Bytes(100, 0x5a));
    CHECK(checked->evidence.report_data == Bytes(64, 3));
    CHECK(checked->evidence.certificate_spki == key.spki_der());
    // Re-encoding what was decoded gives the signed bytes back.
    CHECK(app::encode_cert_signing_request(checked->csr) == signed_csr->csr);

    // A V1 attestation in a V2 CSR.
    auto v1 = tee::encode_v1_attestation(small_evidence());
    REQUIRE(v1);
    request.attestation = *v1;
    signed_csr = app::sign_cert_signing_request(request, key);
    REQUIRE(signed_csr);
    checked = app::decode_sign_cert_request(2, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(checked, (checked ? "" : checked.error().message));
    CHECK(checked->evidence.source == "SignCert CSR (V1 attestation)");
    CHECK(checked->evidence.report_data == Bytes(64, 3));

    // V1: quote and event-log JSON, no V2 fields.
    app::CertSigningRequest legacy;
    legacy.version = 1;
    legacy.pubkey = key.spki_der();
    legacy.config.subject = "legacy";
    legacy.config.usage_client_auth = true;
    legacy.quote = Bytes(100, 0x5a);
    legacy.event_log = to_bytes(tee::event_log_to_json(small_evidence().event_log));
    signed_csr = app::sign_cert_signing_request(legacy, key);
    REQUIRE(signed_csr);
    // Under the wrong api_version it cannot be read as V2's layout plus an attestation that parses.
    CHECK_FALSE(app::decode_sign_cert_request(2, signed_csr->csr, signed_csr->signature).ok());
    checked = app::decode_sign_cert_request(1, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(checked, (checked ? "" : checked.error().message));
    CHECK(checked->csr.version == 1);
    CHECK(checked->csr.config.subject == "legacy");
    CHECK_FALSE(checked->csr.config.ext_app_info);
    CHECK(checked->evidence.source == "SignCert CSR (quote and event log)");
    CHECK(checked->evidence.quote == legacy.quote);
    REQUIRE(checked->evidence.event_log.size() == 1);
    CHECK(checked->evidence.event_log[0].event == "acpi-loader");
    CHECK(checked->evidence.certificate_spki == key.spki_der());
    CHECK(app::encode_cert_signing_request(checked->csr) == signed_csr->csr);
}

TEST_CASE("csr: the real fixture attestation in a V2 CSR" * doctest::skip(vector_missing(attestation_vector))) {
    auto fixture = read_vector(attestation_vector);
    REQUIRE(fixture);
    auto key = new_key();
    auto request = sample_request(key);
    request.attestation = to_bytes(*fixture);
    auto signed_csr = app::sign_cert_signing_request(request, key);
    REQUIRE(signed_csr);
    auto checked = app::decode_sign_cert_request(2, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(checked, (checked ? "" : checked.error().message));
    auto direct = tee::parse_v0_attestation(to_bytes(*fixture));
    REQUIRE(direct);
    CHECK(checked->evidence.quote == direct->quote);
    CHECK(checked->evidence.event_log.size() == direct->event_log.size());
}

TEST_CASE("csr: api versions other than 1 and 2") {
    auto key = new_key();
    auto signed_csr = app::sign_cert_signing_request(sample_request(key), key);
    REQUIRE(signed_csr);
    CHECK(error_of(app::decode_sign_cert_request(0, signed_csr->csr, signed_csr->signature)) ==
          "Unsupported API version: 0");
    CHECK(error_of(app::decode_sign_cert_request(3, signed_csr->csr, signed_csr->signature)) ==
          "Unsupported API version: 3");
}

TEST_CASE("csr: non-canonical compact lengths are refused") {
    const Bytes valid = unhex(fixed_csr_hex);
    REQUIRE(valid[fixed_subject_offset] == 0x18);  // the subject's length prefix, 6
    // 6 in two-byte mode, in four-byte mode, in big mode.
    for (const Bytes& prefix : {Bytes{0x19, 0x00}, Bytes{0x1a, 0, 0, 0}, Bytes{0x03, 6, 0, 0, 0}}) {
        auto bytes = with_replaced(valid, fixed_subject_offset, 1, prefix);
        CHECK(error_of(app::decode_cert_signing_request(2, bytes)) ==
              "csr: config.subject at offset 117: non-canonical length prefix");
    }
    // Big mode with more than four bytes cannot be a u32 length.
    auto bytes = with_replaced(valid, fixed_subject_offset, 1, {0x07, 0, 0, 0, 0x40, 0});
    CHECK(error_of(app::decode_cert_signing_request(2, bytes)) ==
          "csr: config.subject at offset 117: length prefix too large");
    // The canonical forms of each mode are read (the pubkey's 91 is two-byte mode): a 64-byte
    // subject (two-byte mode's smallest) decodes.
    auto request = fixed_request();
    request.config.subject = std::string(64, 'a');
    auto encoded = app::encode_cert_signing_request(request);
    CHECK(encoded[fixed_subject_offset] == 0x01);
    CHECK(encoded[fixed_subject_offset + 1] == 0x01);
    CHECK(app::decode_cert_signing_request(2, encoded).ok());
    // Four-byte and big mode, canonical, for lengths the limits refuse: the limit is what refuses them.
    CHECK(error_of(app::decode_cert_signing_request(2, with_replaced(valid, fixed_subject_offset, 1, {0x02, 0, 1, 0}))) ==
          "csr: config.subject at offset 117: 16384 bytes, more than the limit of 1024");
    CHECK(error_of(app::decode_cert_signing_request(2, with_replaced(valid, fixed_subject_offset, 1, {0x03, 0, 0, 0, 0x40}))) ==
          "csr: config.subject at offset 117: 1073741824 bytes, more than the limit of 1024");
}

TEST_CASE("csr: truncations, trailing bytes, booleans and option tags") {
    auto key = new_key();
    app::CertSigningRequest legacy;
    legacy.version = 1;
    legacy.pubkey = key.spki_der();
    legacy.config.org_name = "o";
    legacy.config.subject = "s";
    legacy.config.subject_alt_names = {"a", "b"};
    legacy.quote = {1, 2, 3};
    legacy.event_log = to_bytes("[]");
    const auto v1 = app::encode_cert_signing_request(legacy);
    REQUIRE(app::decode_cert_signing_request(1, v1).ok());
    for (std::size_t cut = 0; cut < v1.size(); ++cut)
        CHECK_MESSAGE(!app::decode_cert_signing_request(1, ByteView(v1).subspan(0, cut)).ok(), "cut at ", cut);
    auto longer = v1;
    longer.push_back(0);
    CHECK(error_of(app::decode_cert_signing_request(1, longer)) ==
          fmt::format("csr: 1 trailing bytes after the request at offset {}", v1.size()));

    // V2: every cut before the attestation fails (from there on the attestation is the rest).
    const Bytes v2 = unhex(fixed_csr_hex);
    const std::size_t attestation_at = v2.size() - 2;
    for (std::size_t cut = 0; cut <= attestation_at; ++cut)
        CHECK_MESSAGE(!app::decode_cert_signing_request(2, ByteView(v2).subspan(0, cut)).ok(), "cut at ", cut);
    CHECK(error_of(app::decode_cert_signing_request(2, ByteView(v2).subspan(0, attestation_at))) ==
          fmt::format("csr: attestation at offset {}: missing (the request ends after config)", attestation_at));
    CHECK(error_of(app::decode_cert_signing_request(2, ByteView(v2).subspan(0, 20))) ==
          "csr: pubkey at offset 20: truncated, 91 bytes needed, 0 left");

    // Offsets after the subject (124): SANs 124..132, then server auth 132, client auth 133,
    // ext_quote 134, ext_app_info 135, not_before 136, not_after 137.
    auto patched = [&](std::size_t at, std::uint8_t value) {
        auto bytes = v2;
        bytes[at] = value;
        return app::decode_cert_signing_request(2, bytes);
    };
    CHECK(error_of(patched(132, 2)) == "csr: config.usage_server_auth at offset 132: 0x02 is not a boolean (0 or 1)");
    CHECK(error_of(patched(133, 0xff)) == "csr: config.usage_client_auth at offset 133: 0xff is not a boolean (0 or 1)");
    CHECK(error_of(patched(134, 2)) == "csr: config.ext_quote at offset 134: 0x02 is not a boolean (0 or 1)");
    CHECK(error_of(patched(135, 2)) == "csr: config.ext_app_info at offset 135: 0x02 is not a boolean (0 or 1)");
    CHECK(error_of(patched(136, 2)) == "csr: config.not_before at offset 136: 0x02 is not an Option tag (0 or 1)");
    CHECK(error_of(patched(137, 2)) == "csr: config.not_after at offset 137: 0x02 is not an Option tag (0 or 1)");
    CHECK(error_of(patched(111, 2)) == "csr: config.org_name at offset 111: 0x02 is not an Option tag (0 or 1)");
    // Strings are UTF-8.
    CHECK(error_of(patched(fixed_subject_offset + 1, 0xc0)) ==
          "csr: config.subject at offset 117: the string is not valid UTF-8");
}

TEST_CASE("csr: limits") {
    auto request = fixed_request();
    auto decode = [](const app::CertSigningRequest& r) {
        return app::decode_cert_signing_request(2, app::encode_cert_signing_request(r));
    };
    request.config.subject = std::string(1024, 's');
    CHECK(decode(request).ok());
    request.config.subject = std::string(1025, 's');
    CHECK(error_of(decode(request)) == "csr: config.subject at offset 117: 1025 bytes, more than the limit of 1024");
    request = fixed_request();
    request.config.org_name = std::string(1025, 'o');
    CHECK(contains(error_of(decode(request)), "csr: config.org_name at offset 112: 1025 bytes, more than the limit"));
    request = fixed_request();
    request.config.subject_alt_names.assign(64, "n");
    CHECK(decode(request).ok());
    request.config.subject_alt_names.assign(65, "n");
    CHECK(error_of(decode(request)) ==
          "csr: config.subject_alt_names at offset 124: 65 entries, more than the limit of 64");
    request = fixed_request();
    request.config.subject_alt_names = {"a", std::string(254, 'n')};
    CHECK(error_of(decode(request)) ==
          "csr: config.subject_alt_names[1] at offset 127: 254 bytes, more than the limit of 253");
    request = fixed_request();
    request.pubkey = Bytes(1025, 0x30);
    CHECK(error_of(decode(request)) == "csr: pubkey at offset 18: 1025 bytes, more than the limit of 1024");
    request = fixed_request();
    request.confirm = std::string(65, 'c');
    CHECK(error_of(decode(request)) == "csr: confirm at offset 0: 65 bytes, more than the limit of 64");
    // A SAN count the rest of the input cannot hold fails before anything is allocated.
    auto bytes = unhex(fixed_csr_hex);
    bytes.resize(124);
    bytes.insert(bytes.end(), {0x01, 0x01});  // 64 names, one byte left
    bytes.push_back(0);
    CHECK(error_of(app::decode_cert_signing_request(2, bytes)) ==
          "csr: config.subject_alt_names at offset 124: 64 entries cannot fit in the 1 bytes left");
    // The whole CSR.
    request = fixed_request();
    request.attestation = Bytes(app::max_csr_size, 0);
    CHECK(error_of(decode(request)) == fmt::format("csr: {} bytes, more than the limit of {}",
                                                   app::encode_cert_signing_request(request).size(), app::max_csr_size));
}

TEST_CASE("csr: confirm, key and signature checks") {
    auto key = new_key();
    auto request = sample_request(key);
    auto sign = [&](const app::CertSigningRequest& r, const crypto::P256PrivateKey& k) {
        auto s = app::sign_cert_signing_request(r, k);
        REQUIRE(s);
        return *s;
    };

    auto wrong_confirm = request;
    wrong_confirm.confirm = "please sign cert";
    auto s = sign(wrong_confirm, key);
    CHECK(error_of(app::decode_sign_cert_request(2, s.csr, s.signature)) ==
          "csr: confirm: expected \"please sign cert:\"");

    // Signed by another key than the CSR's.
    s = sign(request, new_key());
    CHECK(error_of(app::decode_sign_cert_request(2, s.csr, s.signature)) ==
          "signature: does not verify: the CSR was not signed by the key in csr.pubkey");
    // A valid signature over other bytes: one flipped bit in the CSR.
    s = sign(request, key);
    auto flipped = s.csr;
    flipped[fixed_subject_offset + 3] ^= 0x01;
    CHECK(contains(error_of(app::decode_sign_cert_request(2, flipped, s.signature)), "signature: does not verify"));
    // The raw r||s form is not the DER upstream sends.
    auto raw = crypto::p256_signature_der_to_raw(s.signature);
    REQUIRE(raw);
    CHECK(contains(error_of(app::decode_sign_cert_request(2, s.csr, *raw)), "signature: malformed DER ECDSA signature"));
    CHECK(contains(error_of(app::decode_sign_cert_request(2, s.csr, {})), "signature: "));

    // A key that is not P-256: secp256k1 (same SPKI shape, other curve) and garbage.
    auto k1 = crypto::Secp256k1PrivateKey::from_scalar(Bytes(32, 7));
    REQUIRE(k1);
    auto other_curve = request;
    // id-ecPublicKey with the secp256k1 OID (1.3.132.0.10) and its uncompressed point.
    other_curve.pubkey = unhex("3056301006072a8648ce3d020106052b8104000a034200");
    auto point = k1->public_key_uncompressed();
    other_curve.pubkey.insert(other_curve.pubkey.end(), point.begin(), point.end());
    s = sign(other_curve, key);
    CHECK(contains(error_of(app::decode_sign_cert_request(2, s.csr, s.signature)),
                   "csr: pubkey: not a P-256 SubjectPublicKeyInfo: "));
    auto garbage = request;
    garbage.pubkey = {0x30, 0x00};
    s = sign(garbage, key);
    CHECK(contains(error_of(app::decode_sign_cert_request(2, s.csr, s.signature)),
                   "csr: pubkey: not a P-256 SubjectPublicKeyInfo: "));
}

TEST_CASE("csr: the evidence must parse") {
    auto key = new_key();
    auto request = sample_request(key);
    request.attestation = {0x05, 0x00};
    auto s = app::sign_cert_signing_request(request, key);
    REQUIRE(s);
    CHECK(error_of(app::decode_sign_cert_request(2, s->csr, s->signature)) ==
          "csr: attestation: not a versioned attestation (first byte 0x05; a V0 one starts with 0x00, a V1 one with a "
          "MessagePack map marker)");
    request.attestation = {0x00, 0x03};
    s = app::sign_cert_signing_request(request, key);
    REQUIRE(s);
    CHECK(error_of(app::decode_sign_cert_request(2, s->csr, s->signature)) ==
          "csr: attestation: V0 attestation: attestation platform not supported: DstackAmdSevSnp");

    app::CertSigningRequest legacy;
    legacy.version = 1;
    legacy.pubkey = key.spki_der();
    legacy.quote = {1};
    legacy.event_log = to_bytes("not json");
    s = app::sign_cert_signing_request(legacy, key);
    REQUIRE(s);
    CHECK(contains(error_of(app::decode_sign_cert_request(1, s->csr, s->signature)), "csr: event_log: "));
    legacy.event_log = to_bytes("ELGZv1...");
    s = app::sign_cert_signing_request(legacy, key);
    REQUIRE(s);
    CHECK(error_of(app::decode_sign_cert_request(1, s->csr, s->signature)) ==
          "csr: event_log: compressed (ELGZv1) event logs are not supported");
    legacy.quote.clear();
    legacy.event_log = to_bytes("[]");
    s = app::sign_cert_signing_request(legacy, key);
    REQUIRE(s);
    CHECK(error_of(app::decode_sign_cert_request(1, s->csr, s->signature)) == "csr: quote is empty");
}

TEST_CASE("csr: SCALE compact lengths at each mode's bounds (base/scale.hpp)") {
    // parity-scale-codec's Compact<u32>: 0..63 one byte, ..2^14-1 two, ..2^30-1 four, then 0x03 + u32le.
    const std::vector<std::pair<std::uint32_t, std::string_view>> cases = {
        {0, "00"},         {63, "fc"},           {64, "0101"},       {16383, "fdff"},
        {16384, "02000100"}, {(1u << 30) - 1, "feffffff"}, {1u << 30, "0300000040"}, {0xffffffffu, "03ffffffff"}};
    for (const auto& [value, hex] : cases) {
        scale::Writer writer;
        writer.compact_length(value);
        CHECK_MESSAGE(writer.bytes() == unhex(hex), value);
        scale::Reader reader(writer.bytes());
        auto read = reader.compact_length("n");
        REQUIRE(read);
        CHECK(*read == value);
        CHECK(reader.remaining() == 0);
    }
    // One below each mode's smallest value, written in that mode.
    for (std::string_view hex : {"fd00", "feff0000", "03ffffff3f"}) {
        const Bytes bytes = unhex(hex);  // the reader views it
        scale::Reader reader(bytes);
        CHECK(error_of(reader.compact_length("n")) == "n at offset 0: non-canonical length prefix");
    }
    const Bytes u64_bytes = unhex("0807060504030201");
    scale::Reader u64_reader(u64_bytes);
    CHECK(u64_reader.u64("x").value() == 0x0102030405060708ull);
}
