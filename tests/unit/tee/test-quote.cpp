#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/quote.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

constexpr std::size_t tdx_quote_meaningful = 4936;  // 5006 bytes less 70 bytes of zero padding

Bytes read_vector(const std::string& name) {
    auto bytes = read_file(vector_path(name), 1 << 20);
    REQUIRE_MESSAGE(bytes.ok(), (bytes.ok() ? "" : bytes.error().message));
    return *bytes;
}

Bytes read_hex_vector(const std::string& name) {
    auto text = read_text_file(vector_path(name), 1 << 20);
    REQUIRE(text.ok());
    std::string trimmed = *text;
    while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) trimmed.pop_back();
    auto bytes = hex_decode(trimmed);
    REQUIRE_MESSAGE(bytes.ok(), (bytes.ok() ? "" : bytes.error().message));
    return *bytes;
}

template <std::size_t N>
std::string hex(const Fixed<N>& field) {
    return hex_encode(field);
}

Quote parse_ok(ByteView bytes) {
    auto quote = parse_quote(bytes);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    return *quote;
}

std::string parse_error(ByteView bytes) {
    auto quote = parse_quote(bytes);
    REQUIRE_FALSE(quote.ok());
    return quote.error().message;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

void put_u16(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes[offset] = static_cast<std::uint8_t>(value);
    bytes[offset + 1] = static_cast<std::uint8_t>(value >> 8);
}

void put_u32(Bytes& bytes, std::size_t offset, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

Bytes reencode(const Quote& quote) { return encode_quote(quote.header, quote.body, quote.auth); }

void check_pck_chain(const QuoteAuthData& auth) {
    CHECK(auth.certification_data_type == cert_type_pck_chain);
    auto chain = crypto::Certificate::chain_from_pem(as_chars(auth.certification_data));
    REQUIRE_MESSAGE(chain.ok(), (chain.ok() ? "" : chain.error().message));
    CHECK(chain->size() == 3);
}

}  // namespace

TEST_CASE("quote: real TDX v4 quote" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto bytes = read_vector("dcap-qvl/tdx_quote");
    REQUIRE(bytes.size() == 5006);
    auto quote = parse_ok(bytes);

    CHECK(quote.header.version == 4);
    CHECK(quote.header.attestation_key_type == attestation_key_type_ecdsa_p256);
    CHECK(quote.header.tee_type == tee_type_tdx);
    CHECK(quote.header.qe_vendor_id == intel_qe_vendor_id);
    CHECK(quote.is_tdx());
    CHECK(quote.body_type == 2);
    CHECK(quote.body_size == td_report10_size);
    CHECK(quote.signed_length == 632);
    CHECK(quote.trailing_bytes == 70);

    REQUIRE(std::holds_alternative<TdReport10>(quote.body));
    const TdReport10* td = quote.td_report();
    REQUIRE(td != nullptr);
    CHECK(quote.enclave_report() == nullptr);
    CHECK(hex(td->mr_td).substr(0, 8) == "91eb2b44");
    CHECK(hex(td->tee_tcb_svn).substr(0, 6) == "060103");
    CHECK(hex(td->td_attributes) == "0000001000000000");
    CHECK(std::equal(quote.report_data().begin(), quote.report_data().end(), bytes.begin() + 568));

    const auto& auth = quote.auth;
    CHECK(auth.outer_certification_data_type == cert_type_qe_report);
    CHECK(auth.qe_auth_data.size() == 32);
    // The QE report sits after the body, the length, the signature, the key and the outer type/length.
    constexpr std::size_t qe_report_offset = 632 + 4 + 128 + 6;
    CHECK(std::equal(auth.qe_report_bytes.begin(), auth.qe_report_bytes.end(), bytes.begin() + qe_report_offset));
    CHECK(encode_enclave_report(auth.qe_report) == Bytes(auth.qe_report_bytes.begin(), auth.qe_report_bytes.end()));
    CHECK(std::equal(auth.ecdsa_signature.begin(), auth.ecdsa_signature.end(), bytes.begin() + 636));
    check_pck_chain(auth);

    CHECK(encode_signed_region(quote.header, quote.body) == Bytes(bytes.begin(), bytes.begin() + 632));
    CHECK(encode_td_report10(*td) == Bytes(bytes.begin() + 48, bytes.begin() + 632));
    CHECK(reencode(quote) == Bytes(bytes.begin(), bytes.begin() + tdx_quote_meaningful));
}

TEST_CASE("quote: real SGX v3 quote" * doctest::skip(vector_missing("dcap-qvl/sgx_quote"))) {
    auto bytes = read_vector("dcap-qvl/sgx_quote");
    REQUIRE(bytes.size() == 4600);
    auto quote = parse_ok(bytes);

    CHECK(quote.header.version == 3);
    CHECK(quote.header.tee_type == tee_type_sgx);
    CHECK(quote.header.attestation_key_type == attestation_key_type_ecdsa_p256);
    CHECK_FALSE(quote.is_tdx());
    CHECK(quote.body_type == 1);
    CHECK(quote.body_size == enclave_report_size);
    CHECK(quote.signed_length == 432);
    CHECK(quote.td_report() == nullptr);
    const EnclaveReport* report = quote.enclave_report();
    REQUIRE(report != nullptr);
    CHECK(std::equal(quote.report_data().begin(), quote.report_data().end(), bytes.begin() + 48 + 320));
    CHECK(quote.auth.outer_certification_data_type == 0);
    CHECK(quote.auth.qe_report.isv_svn == 10);
    CHECK(quote.auth.qe_auth_data.size() == 32);
    constexpr std::size_t qe_report_offset = 432 + 4 + 128;
    CHECK(std::equal(quote.auth.qe_report_bytes.begin(), quote.auth.qe_report_bytes.end(),
                     bytes.begin() + qe_report_offset));
    check_pck_chain(quote.auth);

    auto encoded = reencode(quote);
    REQUIRE(encoded.size() + quote.trailing_bytes == bytes.size());
    CHECK(encoded == Bytes(bytes.begin(), bytes.begin() + encoded.size()));
    CHECK(encode_enclave_report(*report) == Bytes(bytes.begin() + 48, bytes.begin() + 432));
}

TEST_CASE("quote: real TDX v5 quote with a TD 1.5 body" * doctest::skip(vector_missing("dcap-qvl/tdx_quote_outdated"))) {
    auto bytes = read_vector("dcap-qvl/tdx_quote_outdated");
    REQUIRE(bytes.size() == 5006);
    auto quote = parse_ok(bytes);

    CHECK(quote.header.version == 5);
    CHECK(quote.header.tee_type == tee_type_tdx);
    CHECK(quote.body_type == 3);
    CHECK(quote.body_size == td_report15_size);
    CHECK(quote.signed_length == 48 + 6 + 648);
    CHECK(quote.trailing_bytes == 0);
    REQUIRE(std::holds_alternative<TdReport15>(quote.body));
    const TdReport10* td = quote.td_report();
    REQUIRE(td != nullptr);
    CHECK(td == &std::get<TdReport15>(quote.body).base);
    CHECK(hex(td->tee_tcb_svn).substr(0, 6) == "070103");
    CHECK(td->rt_mr0 == Fixed<48>{});
    CHECK(td->rt_mr3 == Fixed<48>{});
    // v5 moves REPORTDATA by the 6-byte descriptor.
    CHECK(std::equal(quote.report_data().begin(), quote.report_data().end(), bytes.begin() + 574));
    CHECK(quote.auth.outer_certification_data_type == cert_type_qe_report);
    check_pck_chain(quote.auth);

    CHECK(encode_signed_region(quote.header, quote.body) == Bytes(bytes.begin(), bytes.begin() + 702));
    CHECK(encode_td_report15(std::get<TdReport15>(quote.body)) == Bytes(bytes.begin() + 54, bytes.begin() + 702));
    CHECK(reencode(quote) == bytes);
}

TEST_CASE("quote: hex TDX quotes from dstack guests" *
          doctest::skip(vector_missing("dcap-qvl/quote-from-tappd.hex") || vector_missing("dcap-qvl/tdx-quote.hex"))) {
    struct Case {
        const char* name;
        const char* mr_td_prefix;
    };
    for (auto [name, mr_td_prefix] : {Case{"dcap-qvl/quote-from-tappd.hex", "c68518a0"},
                                      Case{"dcap-qvl/tdx-quote.hex", "7ba9e262"}}) {
        CAPTURE(name);
        auto bytes = read_hex_vector(name);
        auto quote = parse_ok(bytes);
        CHECK(quote.header.version == 4);
        REQUIRE(quote.td_report() != nullptr);
        CHECK(hex(quote.td_report()->mr_td).substr(0, 8) == mr_td_prefix);
        check_pck_chain(quote.auth);
        auto encoded = reencode(quote);
        REQUIRE(encoded.size() + quote.trailing_bytes == bytes.size());
        CHECK(encoded == Bytes(bytes.begin(), bytes.begin() + encoded.size()));
    }
}

TEST_CASE("quote: every truncation fails cleanly" * doctest::skip(vector_missing("dcap-qvl/tdx_quote") ||
                                                                  vector_missing("dcap-qvl/tdx_quote_outdated") ||
                                                                  vector_missing("dcap-qvl/sgx_quote"))) {
    for (const char* name : {"dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_outdated", "dcap-qvl/sgx_quote"}) {
        CAPTURE(name);
        auto bytes = read_vector(name);
        auto quote = parse_ok(bytes);
        auto meaningful = bytes.size() - quote.trailing_bytes;
        std::size_t clean_failures = 0;
        for (std::size_t length = 0; length < meaningful; ++length) {
            auto result = parse_quote(ByteView(bytes).first(length));
            if (!result.ok() && contains(result.error().message, "Not enough data to fill buffer")) ++clean_failures;
            else CHECK_MESSAGE(false, "length ", length, ": ", (result.ok() ? "accepted" : result.error().message));
        }
        CHECK(clean_failures == meaningful);
    }
    // dcap-qvl's truncated_quote sample.
    Bytes four = {0x03, 0x00, 0x02, 0x00};
    CHECK(contains(parse_error(four), "Not enough data to fill buffer"));
    CHECK(contains(parse_error(ByteView()), "Not enough data to fill buffer"));
}

TEST_CASE("quote: header and descriptor checks" * doctest::skip(vector_missing("dcap-qvl/tdx_quote") ||
                                                               vector_missing("dcap-qvl/tdx_quote_outdated") ||
                                                               vector_missing("dcap-qvl/sgx_quote"))) {
    auto tdx = read_vector("dcap-qvl/tdx_quote");
    auto v5 = read_vector("dcap-qvl/tdx_quote_outdated");
    auto sgx = read_vector("dcap-qvl/sgx_quote");

    SUBCASE("versions other than 3, 4, 5") {
        for (std::uint16_t version : {0, 1, 2, 6, 255, 0xFFFF}) {
            CAPTURE(version);
            auto bytes = tdx;
            put_u16(bytes, 0, version);
            CHECK(contains(parse_error(bytes), "Unsupported quote version"));
        }
        // dcap-qvl's invalid_quote_format sample.
        CHECK(contains(parse_error(Bytes(100, 0xFF)), "Unsupported quote version"));
    }
    SUBCASE("TEE type") {
        auto bytes = tdx;
        put_u32(bytes, 4, 0x80);
        CHECK(contains(parse_error(bytes), "Invalid TEE type"));
        bytes = sgx;
        put_u32(bytes, 4, tee_type_tdx);
        CHECK(contains(parse_error(bytes), "Invalid TEE type"));
    }
    SUBCASE("v5 body descriptor") {
        auto bytes = v5;
        put_u32(bytes, 50, td_report10_size);
        CHECK(contains(parse_error(bytes), "Body size 584 does not match body type 3"));
        bytes = v5;
        put_u16(bytes, 48, 7);
        CHECK(contains(parse_error(bytes), "Unsupported body type"));
        bytes = v5;
        put_u16(bytes, 48, 1);
        put_u32(bytes, 50, enclave_report_size);
        CHECK(contains(parse_error(bytes), "does not match TEE type"));
        bytes = v5;
        put_u32(bytes, 4, tee_type_sgx);
        CHECK(contains(parse_error(bytes), "does not match TEE type"));
    }
    SUBCASE("outer certification data type must be 6") {
        auto bytes = tdx;
        put_u16(bytes, 632 + 4 + 128, cert_type_pck_chain);
        CHECK(contains(parse_error(bytes), "Unsupported certification data type 5"));

        auto quote = parse_ok(tdx);
        quote.auth.outer_certification_data_type = cert_type_pck_chain;
        CHECK(contains(parse_error(reencode(quote)), "Unsupported certification data type 5"));
    }
    SUBCASE("lengths must agree with the contents") {
        // One extra byte inside the signature data, counted by its length.
        auto bytes = Bytes(tdx.begin(), tdx.begin() + tdx_quote_meaningful);
        bytes.push_back(0);
        put_u32(bytes, 632, 4301);
        CHECK(contains(parse_error(bytes), "unexpected bytes"));
        // The same inside the type-6 data.
        put_u32(bytes, 632 + 4 + 128 + 2, 4167);
        CHECK(contains(parse_error(bytes), "unexpected bytes"));
        // A length far beyond any quote.
        bytes = tdx;
        put_u32(bytes, 632, 0x7FFFFFFF);
        CHECK(contains(parse_error(bytes), "Data length exceeds maximum"));
    }
    SUBCASE("size limit") {
        auto bytes = tdx;
        bytes.resize(max_quote_size, 0);
        auto quote = parse_ok(bytes);
        CHECK(quote.trailing_bytes == max_quote_size - tdx_quote_meaningful);
        bytes.push_back(0);
        CHECK(contains(parse_error(bytes), "Data length exceeds maximum"));
    }
}

TEST_CASE("quote: encoded quotes of every shape parse back") {
    QuoteHeader header;
    header.attestation_key_type = attestation_key_type_ecdsa_p256;
    header.qe_vendor_id = intel_qe_vendor_id;
    header.user_data[0] = 0x42;

    EnclaveReport enclave;
    enclave.cpu_svn.fill(0x01);
    enclave.misc_select = 0x12345678;
    enclave.attributes[0] = 0x02;
    enclave.mr_enclave.fill(0xAA);
    enclave.isv_prod_id = 0x0102;
    enclave.isv_svn = 0x0304;
    enclave.report_data.fill(0x5A);

    TdReport15 td15;
    td15.base.tee_tcb_svn.fill(0x01);
    td15.base.mr_td.fill(0x03);
    td15.base.rt_mr3.fill(0x0A);
    td15.base.report_data.fill(0x77);
    td15.tee_tcb_svn2.fill(0x02);
    td15.mr_service_td.fill(0x0B);

    QuoteAuthData auth;
    auth.ecdsa_signature.fill(0x11);
    auth.ecdsa_attestation_key.fill(0x22);
    auth.qe_report = enclave;
    auth.qe_report.isv_svn = 6;
    auth.qe_report_signature.fill(0x33);
    auth.qe_auth_data = Bytes(32, 0x44);
    auth.certification_data_type = cert_type_pck_chain;
    auth.certification_data = to_bytes("-----BEGIN CERTIFICATE-----\n");

    struct Shape {
        std::uint16_t version;
        std::uint32_t tee_type;
        QuoteBody body;
        std::uint16_t body_type;
        std::size_t signed_length;
    };
    for (const auto& shape : {Shape{3, tee_type_sgx, enclave, 1, 432}, Shape{4, tee_type_sgx, enclave, 1, 432},
                              Shape{4, tee_type_tdx, td15.base, 2, 632}, Shape{5, tee_type_sgx, enclave, 1, 438},
                              Shape{5, tee_type_tdx, td15.base, 2, 638}, Shape{5, tee_type_tdx, td15, 3, 702}}) {
        CAPTURE(shape.version);
        CAPTURE(shape.body_type);
        header.version = shape.version;
        header.tee_type = shape.tee_type;
        auto bytes = encode_quote(header, shape.body, auth);
        auto quote = parse_ok(bytes);
        CHECK(quote.body_type == shape.body_type);
        CHECK(quote.signed_length == shape.signed_length);
        CHECK(quote.trailing_bytes == 0);
        CHECK(quote.header.user_data == header.user_data);
        CHECK(quote.body.index() == shape.body.index());
        CHECK(quote.report_data() == (shape.body_type == 1 ? enclave.report_data : td15.base.report_data));
        CHECK(quote.auth.qe_report.isv_svn == 6);
        CHECK(quote.auth.qe_auth_data == auth.qe_auth_data);
        CHECK(quote.auth.certification_data == auth.certification_data);
        CHECK(quote.auth.outer_certification_data_type == (shape.version == 3 ? 0 : cert_type_qe_report));
        CHECK(encode_signed_region(header, shape.body) == Bytes(bytes.begin(), bytes.begin() + quote.signed_length));
        CHECK(reencode(quote) == bytes);
    }
}

TEST_CASE("quote: enclave reports are exactly 384 bytes") {
    EnclaveReport report;
    report.mr_signer.fill(0x5C);
    report.isv_svn = 7;
    auto bytes = encode_enclave_report(report);
    REQUIRE(bytes.size() == enclave_report_size);
    CHECK(bytes[256 + 2] == 7);
    auto parsed = parse_enclave_report(bytes);
    REQUIRE(parsed.ok());
    CHECK(parsed->mr_signer == report.mr_signer);
    CHECK(parsed->isv_svn == 7);
    CHECK_FALSE(parse_enclave_report(ByteView(bytes).first(383)).ok());
    bytes.push_back(0);
    CHECK_FALSE(parse_enclave_report(bytes).ok());
}
