#include <doctest/doctest.h>

#include <string>

#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/tee/collateral.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

std::string read_vector_text(const std::string& relative) {
    auto text = read_text_file(vector_path(relative), 4 * 1024 * 1024);
    REQUIRE_MESSAGE(text.ok(), (text.ok() ? "" : text.error().message));
    return *text;
}

Collateral load_collateral(const std::string& relative) {
    auto collateral = parse_collateral_json(read_vector_text(relative));
    REQUIRE_MESSAGE(collateral.ok(), (collateral.ok() ? "" : collateral.error().message));
    return *collateral;
}

// A small but complete collateral document for the error cases.
std::string minimal_collateral(std::string_view replace_key = {}, std::string_view replacement = {}) {
    const std::pair<std::string_view, std::string_view> members[] = {
        {"pck_crl_issuer_chain", "\"chain\""},  {"root_ca_crl", "\"0A0b\""},      {"pck_crl", "\"cd\""},
        {"tcb_info_issuer_chain", "\"tcb\""},   {"tcb_info", "\"{\\\"id\\\":\\\"TDX\\\"}\""},
        {"tcb_info_signature", "\"01\""},       {"qe_identity_issuer_chain", "\"qe\""},
        {"qe_identity", "\"{}\""},              {"qe_identity_signature", "\"02\""},
    };
    std::string out = "{";
    for (const auto& [key, value] : members) {
        if (key == replace_key && replacement.empty()) continue;
        if (out.size() > 1) out += ",";
        out += fmt::format("\"{}\":{}", key, key == replace_key ? replacement : value);
    }
    return out + "}";
}

std::string error_of(const Result<Collateral>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

}  // namespace

TEST_CASE("collateral: the real TDX collateral parses and keeps the signed text exactly" *
          doctest::skip(vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    auto collateral = load_collateral("dcap-qvl/tdx_quote_collateral.json");
    CHECK(collateral.root_ca_crl.size() == 292);
    CHECK(collateral.pck_crl.size() == 2663);
    CHECK(hex_encode(ByteView(collateral.pck_crl).first(4)) == "30820a63");
    CHECK(collateral.tcb_info.size() == 2934);
    CHECK(collateral.tcb_info.rfind("{\"id\":\"TDX\",\"version\":3,", 0) == 0);
    CHECK(hex_encode(crypto::sha256(as_bytes(collateral.tcb_info))) ==
          "369f99a122169e850d32bacb7970da74356f9746526256818124d9f646dd6ace");
    CHECK(collateral.qe_identity.size() == 461);
    CHECK(collateral.tcb_info_signature.size() == 64);
    CHECK(hex_encode(ByteView(collateral.tcb_info_signature).first(8)) == "027ef6ca41bac64e");
    CHECK(collateral.qe_identity_signature.size() == 64);
    CHECK(collateral.tcb_info_issuer_chain.rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
    CHECK_FALSE(collateral.pck_certificate_chain.has_value());

    // The strongest evidence that the bytes are the served ones: Intel's signatures verify.
    auto chain = crypto::Certificate::chain_from_pem(collateral.tcb_info_issuer_chain);
    REQUIRE(chain.ok());
    auto key = chain->front().p256_public_key();
    REQUIRE(key.ok());
    CHECK(crypto::p256_verify(*key, as_bytes(collateral.tcb_info), collateral.tcb_info_signature));
    CHECK(crypto::p256_verify(*key, as_bytes(collateral.qe_identity), collateral.qe_identity_signature));
    std::string altered = collateral.tcb_info;
    altered.back() = ' ';
    CHECK_FALSE(crypto::p256_verify(*key, as_bytes(altered), collateral.tcb_info_signature));
}

TEST_CASE("collateral: output is dcap-qvl's compact JSON and round-trips" *
          doctest::skip(vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    // Expected digests of serde_json-style compact output of each file (keys in order, lowercase hex).
    const std::pair<const char*, const char*> cases[] = {
        {"dcap-qvl/tdx_quote_collateral.json", "b2494fc87926b332c0430c67fd6f0b32d6191267cdde841a439c73227b88a3be"},
        {"dcap-qvl/sgx_quote_collateral.json", "f6000fceab917264e128a4ef2e7b354fe187bdf8439b5f436bf472e138f65fe7"},
        {"dcap-qvl/tdx_quote_outdated_collateral.json", "32779967dd912500ceb4f6353a174117184ecf99bcfc872399a995cb9b3b5302"},
    };
    for (const auto& [path, digest] : cases) {
        CAPTURE(path);
        auto collateral = load_collateral(path);
        auto json = collateral_to_json(collateral);
        CHECK(json.rfind("{\"pck_crl_issuer_chain\":\"-----BEGIN CERTIFICATE-----\\n", 0) == 0);
        CHECK(json.find("pck_certificate_chain") == std::string::npos);
        CHECK(hex_encode(crypto::sha256(as_bytes(json))) == digest);
        auto again = parse_collateral_json(json);
        REQUIRE(again.ok());
        CHECK(collateral_to_json(*again) == json);
        CHECK(again->fingerprint() == collateral.fingerprint());
    }
}

TEST_CASE("collateral: hex in either case, optional PCK chain, escapes") {
    auto parsed = parse_collateral_json(minimal_collateral());
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
    CHECK(parsed->root_ca_crl == Bytes{0x0a, 0x0b});
    CHECK(parsed->tcb_info == "{\"id\":\"TDX\"}");
    CHECK_FALSE(parsed->pck_certificate_chain.has_value());
    auto json = collateral_to_json(*parsed);
    CHECK(json.find("\"root_ca_crl\":\"0a0b\"") != std::string::npos);
    CHECK(json.find("\"tcb_info\":\"{\\\"id\\\":\\\"TDX\\\"}\"") != std::string::npos);

    std::string with_chain = minimal_collateral();
    with_chain.insert(with_chain.size() - 1, ",\"pck_certificate_chain\":\"a\\nb\\u0001\",\"unknown\":[1,{}]");
    parsed = parse_collateral_json(with_chain);
    REQUIRE(parsed.ok());
    REQUIRE(parsed->pck_certificate_chain.has_value());
    CHECK(*parsed->pck_certificate_chain == std::string("a\nb\x01"));
    json = collateral_to_json(*parsed);
    CHECK(json.substr(json.size() - 38) == ",\"pck_certificate_chain\":\"a\\nb\\u0001\"}");
    CHECK(collateral_to_json(*parse_collateral_json(json)) == json);

    std::string null_chain = minimal_collateral();
    null_chain.insert(null_chain.size() - 1, ",\"pck_certificate_chain\":null");
    parsed = parse_collateral_json(null_chain);
    REQUIRE(parsed.ok());
    CHECK_FALSE(parsed->pck_certificate_chain.has_value());
}

TEST_CASE("collateral: errors name the key") {
    CHECK(error_of(parse_collateral_json(minimal_collateral("pck_crl", ""))).find("missing key 'pck_crl'") != std::string::npos);
    CHECK(error_of(parse_collateral_json(minimal_collateral("tcb_info", "{}"))).find("'tcb_info' must be a string") !=
          std::string::npos);
    CHECK(error_of(parse_collateral_json(minimal_collateral("root_ca_crl", "\"0g\""))).find("'root_ca_crl'") != std::string::npos);
    CHECK(error_of(parse_collateral_json(minimal_collateral("qe_identity_signature", "\"abc\""))).find("'qe_identity_signature'") !=
          std::string::npos);
    CHECK(error_of(parse_collateral_json(minimal_collateral("tcb_info_signature", "12"))).find("'tcb_info_signature'") !=
          std::string::npos);
    std::string bad_chain = minimal_collateral();
    bad_chain.insert(bad_chain.size() - 1, ",\"pck_certificate_chain\":5");
    CHECK(error_of(parse_collateral_json(bad_chain)).find("'pck_certificate_chain'") != std::string::npos);
    std::string duplicate = minimal_collateral();
    duplicate.insert(duplicate.size() - 1, ",\"pck_crl\":\"ee\"");
    CHECK(error_of(parse_collateral_json(duplicate)).find("duplicate key 'pck_crl'") != std::string::npos);

    CHECK(error_of(parse_collateral_json("[]")).find("not a JSON object") != std::string::npos);
    CHECK(error_of(parse_collateral_json("{")).find("not valid JSON") != std::string::npos);
    CHECK(error_of(parse_collateral_json(minimal_collateral() + "x")).find("not valid JSON") != std::string::npos);
    CHECK(error_of(parse_collateral_json("{\"a\":\"\xff\"}")).find("not valid JSON") != std::string::npos);
    CHECK(error_of(parse_collateral_json(std::string(max_collateral_size + 1, ' '))).find("exceeds") != std::string::npos);
    // Deep nesting is refused while parsing, at the first bracket past the limit.
    CHECK(error_of(parse_collateral_json(std::string(100000, '[') + std::string(100000, ']'))) ==
          "collateral: JSON nests deeper than 32 levels (at byte 32)");
    // Duplicates are refused at any depth, in members collateral does not even read.
    std::string nested_duplicate = minimal_collateral();
    nested_duplicate.insert(nested_duplicate.size() - 1, ",\"unknown\":[{\"a\":1,\"a\":2}]");
    CHECK(error_of(parse_collateral_json(nested_duplicate)) == "collateral: $.unknown[0]: duplicate key 'a'");
}

TEST_CASE("collateral: the fingerprint covers every field unambiguously") {
    auto base = parse_collateral_json(minimal_collateral());
    REQUIRE(base.ok());
    const Bytes fingerprint = base->fingerprint();
    CHECK(fingerprint.size() == 32);
    CHECK(base->fingerprint() == fingerprint);

    std::vector<Collateral> variants(12, *base);
    variants[0].pck_crl_issuer_chain += "x";
    variants[1].root_ca_crl.push_back(0);
    variants[2].pck_crl.push_back(0);
    variants[3].tcb_info_issuer_chain += "x";
    variants[4].tcb_info += "x";
    variants[5].tcb_info_signature.push_back(0);
    variants[6].qe_identity_issuer_chain += "x";
    variants[7].qe_identity += "x";
    variants[8].qe_identity_signature.push_back(0);
    variants[9].pck_certificate_chain = "";
    variants[10].pck_certificate_chain = "x";
    // Moving a byte across a field boundary must change the digest (length prefixes).
    variants[11].pck_crl_issuer_chain = "chai";
    variants[11].root_ca_crl.insert(variants[11].root_ca_crl.begin(), 'n');
    for (std::size_t i = 0; i < variants.size(); ++i) {
        CAPTURE(i);
        CHECK(variants[i].fingerprint() != fingerprint);
        for (std::size_t j = 0; j < i; ++j) CHECK(variants[i].fingerprint() != variants[j].fingerprint());
    }
}

TEST_CASE("signed documents: the exact served bytes of the PCS response's object" *
          doctest::skip(vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    auto collateral = load_collateral("dcap-qvl/tdx_quote_collateral.json");
    std::string response = "{\"tcbInfo\":" + collateral.tcb_info + ",\"signature\":\"" +
                           hex_encode(collateral.tcb_info_signature) + "\"}";
    auto split = split_signed_document(response, "tcbInfo");
    REQUIRE_MESSAGE(split.ok(), (split.ok() ? "" : split.error().message));
    CHECK(split->body == collateral.tcb_info);
    CHECK(split->signature == collateral.tcb_info_signature);

    std::string identity = "{ \"signature\" : \"" + hex_encode(collateral.qe_identity_signature) +
                           "\",\n \"enclaveIdentity\" :\t" + collateral.qe_identity + " }\n";
    split = split_signed_document(identity, "enclaveIdentity");
    REQUIRE(split.ok());
    CHECK(split->body == collateral.qe_identity);
    CHECK(split->signature == collateral.qe_identity_signature);
}

TEST_CASE("signed documents: strings, escapes and nesting do not confuse the span") {
    const std::string body = R"({"a":"}{\"]","b":[{"c":"\\"},[]],"tcbInfo":{}})";
    auto split = split_signed_document(
        R"({"x":{"tcbInfo":{"wrong":1}},"s\u0069gnature":"00","other":"{","tcb\u0049nfo":)" + body +
            R"(,"signature":"ABcd","n":-1.5e3,"t":true})",
        "tcbInfo");
    // "s\u0069gnature" decodes to "signature": a duplicate key.
    REQUIRE_FALSE(split.ok());
    CHECK(split.error().message.find("duplicate key 'signature'") != std::string::npos);

    split = split_signed_document(R"({"x":{"tcbInfo":{"wrong":1}},"other":"{","tcb\u0049nfo":)" + body +
                                      R"(,"signature":"ABcd","n":-1.5e3,"t":true,"z":null})",
                                  "tcbInfo");
    REQUIRE_MESSAGE(split.ok(), (split.ok() ? "" : split.error().message));
    CHECK(split->body == body);
    CHECK(split->signature == Bytes{0xab, 0xcd});
}

TEST_CASE("signed documents: errors") {
    auto message = [](std::string_view response) {
        auto split = split_signed_document(response, "tcbInfo");
        REQUIRE_FALSE(split.ok());
        return split.error().message;
    };
    CHECK(message(R"({"signature":"00"})").find("missing key 'tcbInfo'") != std::string::npos);
    CHECK(message(R"({"tcbInfo":"{}","signature":"00"})").find("must be an object") != std::string::npos);
    CHECK(message(R"({"tcbInfo":{}})").find("missing key 'signature'") != std::string::npos);
    CHECK(message(R"({"tcbInfo":{},"signature":"0"})").find("'signature'") != std::string::npos);
    CHECK(message(R"({"tcbInfo":{},"signature":7})").find("'signature'") != std::string::npos);
    CHECK(message(R"({"tcbInfo":{},"tcbInfo":{},"signature":"00"})").find("duplicate key 'tcbInfo'") != std::string::npos);
    CHECK(message(R"({"tcbInfo":{},"signature":"00"} {})").find("not valid JSON") != std::string::npos);
    CHECK(message("[]").find("not a JSON object") != std::string::npos);
}
