#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::test_vectors::vector_missing;

namespace {

// Slices of a v4 TDX quote: the TD body starts at 48; RTMR0 at body offset 328, report data at 520.
std::string quote_rtmr_hex(ByteView quote, std::size_t n) {
    REQUIRE(quote.size() >= 48 + 328 + 48 * (n + 1));
    return hex_encode(quote.subspan(48 + 328 + 48 * n, 48));
}

Bytes quote_report_data(ByteView quote) {
    REQUIRE(quote.size() >= 632);
    auto slice = quote.subspan(568, 64);
    return {slice.begin(), slice.end()};
}

std::string error_of(const Result<Evidence>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string json_string_field(const std::string& json, const char* name) {
    rapidjson::Document document;
    document.Parse(json.c_str());
    REQUIRE(document.IsObject());
    REQUIRE(document.HasMember(name));
    return std::string(document[name].GetString(), document[name].GetStringLength());
}

// The V0 attestation header for a DstackTdx quote of `quote_length_prefix` (already encoded).
Bytes v0_prefix(Bytes quote_length_prefix) {
    Bytes out = {0x00, 0x00};
    out.insert(out.end(), quote_length_prefix.begin(), quote_length_prefix.end());
    return out;
}

Evidence small_evidence(std::size_t quote_size) {
    Evidence evidence;
    evidence.quote = Bytes(quote_size, 0x5a);
    TdxEvent event;
    event.imr = 0;
    event.event_type = 10;
    event.digest = Bytes(48, 1);
    event.event = "acpi-loader";
    event.event_payload = to_bytes("ACPI DATA");
    evidence.event_log = {event};
    TdxEvent runtime;
    runtime.imr = 3;
    runtime.event_type = runtime_event_type;
    runtime.event = "app-id";
    runtime.event_payload = Bytes(20, 2);
    runtime.digest = runtime_event_digest(runtime.event, runtime.event_payload, 1);
    evidence.runtime_events = std::vector<TdxEvent>{runtime};
    evidence.report_data = Bytes(64, 3);
    evidence.vm_config = R"({"cpu_count":2})";
    return evidence;
}

}  // namespace

TEST_CASE("V0 attestation: the guest-agent fixture" * doctest::skip(vector_missing("dstack/attestation.bin"))) {
    auto bytes = read_vector("dstack/attestation.bin");
    REQUIRE(bytes);
    REQUIRE(bytes->size() == 9504);
    auto evidence = parse_v0_attestation(as_bytes(*bytes));
    REQUIRE_MESSAGE(evidence.ok(), (evidence.ok() ? "" : evidence.error().message));
    CHECK(evidence->source == "V0 attestation");
    CHECK(evidence->quote.size() == 5010);
    REQUIRE(evidence->event_log.size() == 33);
    REQUIRE(evidence->runtime_events.has_value());
    REQUIRE(evidence->runtime_events->size() == 9);
    CHECK(evidence->runtime_events->front().event == "system-preparing");
    CHECK(evidence->runtime_events->back().event == "system-ready");
    CHECK(evidence->runtime_events->at(7).event == "storage-fs");
    CHECK(as_chars(evidence->runtime_events->at(7).event_payload) == "zfs");
    REQUIRE(evidence->vm_config.has_value());
    CHECK(evidence->vm_config->substr(0, 13) == R"({"kms_urls":[)");
    REQUIRE(evidence->report_data.has_value());
    CHECK(*evidence->report_data == quote_report_data(evidence->quote));

    auto rtmrs = replay_rtmrs(evidence->event_log);
    REQUIRE(rtmrs.ok());
    for (std::size_t i = 0; i < 4; ++i) CHECK(hex_encode((*rtmrs)[i]) == quote_rtmr_hex(evidence->quote, i));
    CHECK(hex_encode(replay_runtime_events(*evidence->runtime_events)) == quote_rtmr_hex(evidence->quote, 3));
    CHECK(quote_rtmr_hex(evidence->quote, 3).substr(0, 8) == "f28a1490");

    std::size_t imr3 = 0;
    for (const auto& event : evidence->event_log) {
        if (event.imr != 3) continue;
        ++imr3;
        CHECK(event.event_type == runtime_event_type);
        CHECK(event.digest == runtime_event_digest(event.event, event.event_payload, 1));
    }
    CHECK(imr3 == 9);
    for (const auto& event : *evidence->runtime_events) {
        CHECK(event.digest == runtime_event_digest(event.event, event.event_payload, 1));
    }

    CHECK(encode_v0_attestation(*evidence) == Bytes(bytes->begin(), bytes->end()));
}

TEST_CASE("V0 attestation: the tdx-lite fixture through read_evidence" *
          doctest::skip(vector_missing("dstack/verifier/tdx-lite-attestation.json"))) {
    auto json = read_vector("dstack/verifier/tdx-lite-attestation.json");
    REQUIRE(json);
    auto evidence = read_evidence(as_bytes(*json));
    REQUIRE_MESSAGE(evidence.ok(), (evidence.ok() ? "" : evidence.error().message));
    CHECK(evidence->source == "V0 attestation (JSON)");
    CHECK(evidence->quote.size() == 5006);
    CHECK(evidence->event_log.size() == 12);
    CHECK(evidence->event_log.at(0).event == "acpi-loader");
    CHECK(evidence->event_log.at(3).digest.empty());
    REQUIRE(evidence->runtime_events.has_value());
    REQUIRE(evidence->runtime_events->size() == 9);
    CHECK(hex_encode(replay_runtime_events(*evidence->runtime_events)) == quote_rtmr_hex(evidence->quote, 3));
    CHECK(quote_rtmr_hex(evidence->quote, 3).substr(0, 8) == "6f24c170");
    CHECK(*evidence->report_data == quote_report_data(evidence->quote));
    CHECK(contains(*evidence->vm_config, R"("os_image_hash":"e6f5cfec)"));

    auto raw = unhex(json_string_field(*json, "attestation"));
    CHECK(raw.size() == 7305);
    CHECK(encode_v0_attestation(*evidence) == raw);

    // The same bytes as hex text and as binary.
    auto from_hex = read_evidence(as_bytes("0x" + hex_encode(raw) + "\n"));
    REQUIRE(from_hex.ok());
    CHECK(from_hex->source == "V0 attestation (hex)");
    CHECK(from_hex->quote == evidence->quote);
    auto from_binary = read_evidence(raw);
    REQUIRE(from_binary.ok());
    CHECK(from_binary->source == "V0 attestation");
}

TEST_CASE("V0 attestation: encoding round-trips every compact-length mode") {
    for (std::size_t quote_size : {0, 63, 64, 16383, 16384, 70000}) {
        auto evidence = small_evidence(quote_size);
        auto encoded = encode_v0_attestation(evidence);
        auto decoded = parse_v0_attestation(encoded);
        REQUIRE_MESSAGE(decoded.ok(), (decoded.ok() ? "" : decoded.error().message));
        CHECK(decoded->quote == evidence.quote);
        CHECK(decoded->event_log.at(0).event == "acpi-loader");
        CHECK(decoded->event_log.at(0).digest == Bytes(48, 1));
        CHECK(decoded->runtime_events->at(0).digest == evidence.runtime_events->at(0).digest);
        CHECK(decoded->runtime_events->at(0).event_type == runtime_event_type);
        CHECK(decoded->runtime_events->at(0).imr == 3);
        CHECK(*decoded->report_data == Bytes(64, 3));
        CHECK(*decoded->vm_config == R"({"cpu_count":2})");
        CHECK(encode_v0_attestation(*decoded) == encoded);
    }
    auto prefix = encode_v0_attestation(small_evidence(64));
    CHECK(hex_encode(Bytes(prefix.begin(), prefix.begin() + 4)) == "00000101");
    prefix = encode_v0_attestation(small_evidence(16384));
    CHECK(hex_encode(Bytes(prefix.begin(), prefix.begin() + 6)) == "000002000100");

    // Absent optional parts encode as empty / zero.
    Evidence bare;
    bare.quote = Bytes{1, 2};
    auto encoded = encode_v0_attestation(bare);
    CHECK(hex_encode(encoded) == "0000" "080102" "00" "00" + std::string(128, '0') + "00");
}

TEST_CASE("V0 attestation: malformed input") {
    auto valid = encode_v0_attestation(small_evidence(10));
    REQUIRE(parse_v0_attestation(valid).ok());

    SUBCASE("every truncation and a trailing byte") {
        for (std::size_t cut = 0; cut < valid.size(); ++cut) {
            CHECK_MESSAGE(!parse_v0_attestation(ByteView(valid).subspan(0, cut)).ok(), "cut at ", cut);
        }
        auto longer = valid;
        longer.push_back(0);
        CHECK(contains(error_of(parse_v0_attestation(longer)), "1 trailing bytes"));
    }
    SUBCASE("non-canonical compact lengths") {
        // 10 in two-byte mode, 10 in four-byte mode, 10 in big mode.
        for (Bytes prefix : {Bytes{0x29, 0x00}, Bytes{0x2a, 0, 0, 0}, Bytes{0x03, 10, 0, 0, 0}}) {
            auto bytes = v0_prefix(prefix);
            bytes.insert(bytes.end(), valid.begin() + 3, valid.end());
            CHECK(contains(error_of(parse_v0_attestation(bytes)), "non-canonical length prefix"));
        }
        // Big mode with more than four bytes cannot be a u32 length.
        auto bytes = v0_prefix({0x07, 0, 0, 0, 0x40, 0});
        CHECK(contains(error_of(parse_v0_attestation(bytes)), "length prefix too large"));
    }
    SUBCASE("lengths larger than the input") {
        CHECK(contains(error_of(parse_v0_attestation(v0_prefix({0x03, 0, 0, 0, 0x40}))), "truncated"));
        CHECK(contains(error_of(parse_v0_attestation(v0_prefix({0xfe, 0xff, 0xff, 0xff}))), "truncated"));
        // An event count the remaining bytes cannot hold fails before anything is allocated.
        auto bytes = v0_prefix({0x00});
        bytes.insert(bytes.end(), {0x02, 0x00, 0x01, 0x00});  // 16384 events
        CHECK(contains(error_of(parse_v0_attestation(bytes)), "more than the limit of 4096"));
        bytes = v0_prefix({0x00});
        bytes.insert(bytes.end(), {0x01, 0x01});  // 64 events in two bytes
        bytes.insert(bytes.end(), 100, 0);
        CHECK(contains(error_of(parse_v0_attestation(bytes)), "cannot fit"));
    }
    SUBCASE("other platforms and versions") {
        CHECK(error_of(parse_v0_attestation(Bytes{0x00, 0x03, 0x00})) ==
              "V0 attestation: attestation platform not supported: DstackAmdSevSnp");
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0x00, 0x01})), "not supported: DstackGcpTdx"));
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0x00, 0x02})), "not supported: DstackNitroEnclave"));
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0x00, 0x04})), "not supported: DstackAwsNitroTpm"));
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0x00, 0x05})), "unknown attestation platform 5"));
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0x01, 0x00})), "not a V0 attestation"));
        CHECK(contains(error_of(parse_v0_attestation(Bytes{0xff})), "not a V0 attestation"));
        CHECK(error_of(parse_v0_attestation({})) == "attestation is empty");
    }
    SUBCASE("strings must be UTF-8") {
        auto evidence = small_evidence(10);
        evidence.runtime_events->at(0).event = "bad\xc0\xaf";
        CHECK(contains(error_of(parse_v0_attestation(encode_v0_attestation(evidence))), "not valid UTF-8"));
        evidence = small_evidence(10);
        evidence.vm_config = "\xed\xa0\x80";  // a surrogate
        auto error = error_of(parse_v0_attestation(encode_v0_attestation(evidence)));
        CHECK(contains(error, "V0 attestation: config at offset "));
        CHECK(contains(error, ": the string is not valid UTF-8"));
    }
    SUBCASE("runtime event names that would replay ambiguously are refused, in both lists") {
        auto evidence = small_evidence(10);
        evidence.runtime_events->at(0).event = "app:id";
        CHECK(error_of(parse_v0_attestation(encode_v0_attestation(evidence))) ==
              "V0 attestation: runtime event 0: runtime event \"app:id\": the name contains ':' (at offset 3), which "
              "makes its digest ambiguous");
        evidence = small_evidence(10);
        evidence.runtime_events->at(0).event = "";
        CHECK(contains(error_of(parse_v0_attestation(encode_v0_attestation(evidence))), "runtime event 0: runtime event with an empty name"));
        evidence = small_evidence(10);
        evidence.event_log.push_back(evidence.runtime_events->at(0));
        evidence.event_log.back().event = "app\x1b";
        CHECK(contains(error_of(parse_v0_attestation(encode_v0_attestation(evidence))),
                       "event log entry 1: runtime event \"app\\x1b\": the name contains the non-printable byte 0x1b"));
        // A boot event's name is not replayed: it is not checked.
        evidence = small_evidence(10);
        evidence.event_log.at(0).event = "a:b";
        CHECK(parse_v0_attestation(encode_v0_attestation(evidence)).ok());
    }
    SUBCASE("size limit") {
        Bytes huge(max_attestation_size + 1, 0);
        CHECK(contains(error_of(parse_v0_attestation(huge)), "more than the limit"));
        CHECK(contains(error_of(read_evidence(huge)), "more than the limit"));
    }
}

TEST_CASE("read_evidence: GetQuote responses" * doctest::skip(vector_missing("dstack/verifier/tdx-lite-getquote.json") ||
                                                              vector_missing("dstack/verifier/quote-report.json"))) {
    auto json = read_vector("dstack/verifier/tdx-lite-getquote.json");
    REQUIRE(json);
    auto evidence = read_evidence(as_bytes(*json));
    REQUIRE_MESSAGE(evidence.ok(), (evidence.ok() ? "" : evidence.error().message));
    CHECK(evidence->source == "GetQuote response");
    CHECK(evidence->quote == unhex(json_string_field(*json, "quote")));
    CHECK(evidence->event_log.size() == 29);
    CHECK_FALSE(evidence->runtime_events.has_value());
    REQUIRE(evidence->report_data.has_value());
    CHECK(*evidence->report_data == quote_report_data(evidence->quote));
    CHECK(*evidence->vm_config == json_string_field(*json, "vm_config"));

    auto report = read_vector("dstack/verifier/quote-report.json");
    REQUIRE(report);
    evidence = read_evidence(as_bytes(*report));
    REQUIRE(evidence.ok());
    CHECK(evidence->event_log.size() == 28);
    CHECK(hex_encode(*evidence->report_data) == "1234" + std::string(124, '0'));
    CHECK(hex_encode(replay_runtime_events(evidence->event_log)) == quote_rtmr_hex(evidence->quote, 3));
}

TEST_CASE("read_evidence: JSON forms and their errors") {
    auto error = [](std::string_view json) { return error_of(read_evidence(as_bytes(json))); };
    SUBCASE("event_log as an actual array, vm_config as an object") {
        auto evidence = read_evidence(as_bytes(
            R"(  {"quote":"0400","event_log":[{"imr":0,"event_type":1,"event":"","event_payload":"ab"}],"vm_config":{"a":1}})"));
        REQUIRE_MESSAGE(evidence.ok(), (evidence.ok() ? "" : evidence.error().message));
        CHECK(evidence->quote == Bytes{4, 0});
        CHECK(evidence->event_log.size() == 1);
        CHECK(*evidence->vm_config == R"({"a":1})");
        CHECK_FALSE(evidence->report_data.has_value());
    }
    SUBCASE("an empty event_log string is an empty log") {
        auto evidence = read_evidence(as_bytes(R"({"quote":"0400","event_log":""})"));
        REQUIRE(evidence.ok());
        CHECK(evidence->event_log.empty());
    }
    CHECK(error(R"({"event_log":"[]"})") == "evidence JSON has neither an 'attestation' nor a 'quote'");
    CHECK(error(R"({"quote":"zz"})").rfind("$.quote: ", 0) == 0);
    CHECK(error(R"({"quote":"0400","report_data":"1234"})") == "$.report_data: expected 64 bytes, got 2");
    CHECK(error(R"({"quote":"0400","event_log":"[{}]"})") == "$.event_log: $[0]: missing field 'imr'");
    CHECK(error(R"({"quote":"0400","event_log":[{}]})") == "$.event_log[0]: missing field 'imr'");
    const std::string good_event = R"({"imr":0,"event_type":1,"event":"","event_payload":""},)";
    CHECK(error(R"({"quote":"0400","event_log":[)" + good_event + good_event + good_event +
                R"({"imr":0,"event_type":1,"event":"","event_payload":"","digest":5}]})") ==
          "$.event_log[3].digest: expected a hex string, got 5");
    CHECK(error(R"({"quote":"0400","event_log":5})") == "$.event_log: expected a JSON array or a string holding one, got 5");
    CHECK(error(R"({"quote":"0400","vm_config":5})") == "$.vm_config: expected a JSON string or an object, got 5");
    CHECK(contains(error(R"({"attestation":"0400"})"), "not a versioned attestation"));
    CHECK(error(R"({"attestation":"8100"})") ==
          "V1 attestation: attestation at offset 0: a map of 1 entries cannot fit in the 1 bytes left");
    CHECK(contains(error(R"({"attestation":"0003"})"), "not supported: DstackAmdSevSnp"));
    CHECK(contains(error("{\"quote\":"), "not valid JSON"));
    CHECK(error("{\"a\":" + std::string(100, '[')) == "evidence JSON: JSON nests deeper than 16 levels (at byte 20)");
}

TEST_CASE("read_evidence: a key given twice is refused, at any depth of a GetQuote response") {
    auto error = [](std::string_view json) { return error_of(read_evidence(as_bytes(json))); };
    CHECK(error(R"({"quote":"0400","quote":"0500"})") == "evidence JSON: $: duplicate key 'quote'");
    CHECK(error(R"({"attestation":"00","quote":"0400","attestation":"01"})") == "evidence JSON: $: duplicate key 'attestation'");
    CHECK(error(R"({"quote":"0400","event_log":[{"imr":0,"event_type":1,"event":"","event_payload":"","imr":3}]})") ==
          "evidence JSON: $.event_log[0]: duplicate key 'imr'");
    CHECK(error(R"({"quote":"0400","event_log":"[{\"imr\":0,\"event_type\":1,\"event\":\"\",\"event_payload\":\"\",\"imr\":3}]"})") ==
          "$.event_log: $[0]: duplicate key 'imr'");
    CHECK(error(R"({"quote":"0400","vm_config":{"cpus":1,"cpus":2}})") == "evidence JSON: $.vm_config: duplicate key 'cpus'");
}

TEST_CASE("read_evidence: raw and hex quotes" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto quote = read_vector("dcap-qvl/tdx_quote");
    REQUIRE(quote);
    auto raw = read_evidence(as_bytes(*quote));
    REQUIRE(raw.ok());
    CHECK(raw->source == "raw quote");
    CHECK(raw->quote == to_bytes(*quote));
    CHECK(raw->event_log.empty());

    std::string hex = hex_encode(as_bytes(*quote));
    std::string wrapped = "  0x";
    for (std::size_t i = 0; i < hex.size(); i += 64) wrapped += hex.substr(i, 64) + "\r\n";
    auto from_hex = read_evidence(as_bytes(wrapped));
    REQUIRE(from_hex.ok());
    CHECK(from_hex->source == "raw quote (hex)");
    CHECK(from_hex->quote == raw->quote);

    CHECK(contains(error_of(read_evidence(as_bytes("abc"))), "hex evidence"));
    CHECK(error_of(read_evidence({})) == "evidence is empty");
    CHECK(error_of(read_evidence(Bytes{0x82, 0xa1})) ==
          "V1 attestation: attestation at offset 0: a map of 2 entries cannot fit in the 1 bytes left");
    CHECK(contains(error_of(read_evidence(as_bytes("-----BEGIN PRIVATE KEY-----\n"))), "not a certificate"));
}

TEST_CASE("RA-TLS certificates" * doctest::skip(vector_missing("dstack/attestation.bin"))) {
    auto attestation = read_vector("dstack/attestation.bin");
    REQUIRE(attestation);
    auto key = crypto::P256PrivateKey::generate();
    REQUIRE(key.ok());
    auto issue = [&](std::vector<crypto::X509Extension> extensions) {
        crypto::CertificateSpec spec;
        spec.subject.common_name = "app.example";
        spec.not_before = 1700000000;
        spec.not_after = 2000000000;
        spec.subject_alt_names = {"app.example"};
        spec.server_auth = true;
        spec.extensions = std::move(extensions);
        auto der = crypto::write_self_signed_certificate(spec, *key);
        REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));
        auto certificate = crypto::Certificate::from_der(*der);
        REQUIRE(certificate.ok());
        return certificate->pem();
    };

    SUBCASE("extension 1.8 holds a V0 attestation") {
        auto pem = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::attestation), as_bytes(*attestation))});
        auto ratls = evidence_from_ratls_pem(pem);
        REQUIRE_MESSAGE(ratls.ok(), (ratls.ok() ? "" : ratls.error().message));
        CHECK(ratls->spki_der == key->spki_der());
        CHECK(ratls->evidence.source == "RA-TLS certificate (V0 attestation)");
        CHECK(ratls->evidence.quote.size() == 5010);
        CHECK(ratls->evidence.runtime_events->size() == 9);
        CHECK(encode_v0_attestation(ratls->evidence) == to_bytes(*attestation));

        auto sniffed = read_evidence(as_bytes("\n" + pem));
        REQUIRE(sniffed.ok());
        CHECK(sniffed->source == "RA-TLS certificate (V0 attestation)");
    }
    SUBCASE("extension 1.8 holds a V1 attestation") {
        auto v0 = parse_v0_attestation(as_bytes(*attestation));
        REQUIRE(v0.ok());
        auto v1 = encode_v1_attestation(*v0);
        REQUIRE(v1.ok());
        auto pem = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::attestation), *v1)});
        auto ratls = evidence_from_ratls_pem(pem);
        REQUIRE_MESSAGE(ratls.ok(), (ratls.ok() ? "" : ratls.error().message));
        CHECK(ratls->evidence.source == "RA-TLS certificate (V1 attestation)");
        CHECK(ratls->evidence.certificate_spki == key->spki_der());
        CHECK(ratls->evidence.quote == v0->quote);
        CHECK(ratls->evidence.runtime_events->size() == 9);
        CHECK(encode_v0_attestation(ratls->evidence) == to_bytes(*attestation));
    }
    SUBCASE("legacy extensions 1.1 and 1.2 hold a quote and a JSON event log") {
        auto v0 = parse_v0_attestation(as_bytes(*attestation));
        REQUIRE(v0.ok());
        auto log_json = event_log_to_json(v0->event_log);
        auto pem = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::tdx_quote), v0->quote),
                          crypto::dstack_extension(std::string(crypto::dstack_oid::event_log), as_bytes(log_json))});
        auto ratls = evidence_from_ratls_pem(pem);
        REQUIRE_MESSAGE(ratls.ok(), (ratls.ok() ? "" : ratls.error().message));
        CHECK(ratls->evidence.source == "RA-TLS certificate (quote and event log)");
        CHECK(ratls->evidence.quote == v0->quote);
        CHECK(ratls->evidence.event_log.size() == 33);
        CHECK_FALSE(ratls->evidence.runtime_events.has_value());
    }
    SUBCASE("errors") {
        auto error = [](const std::string& pem) {
            auto result = evidence_from_ratls_pem(pem);
            REQUIRE_FALSE(result.ok());
            return result.error().message;
        };
        auto quote_only = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::tdx_quote), Bytes{4, 0})});
        CHECK(contains(error(quote_only), "no event log"));
        CHECK(contains(error(issue({})), "carries no attestation"));
        auto compressed = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::tdx_quote), Bytes{4, 0}),
                                 crypto::dstack_extension(std::string(crypto::dstack_oid::event_log), as_bytes("ELGZv1..."))});
        CHECK(contains(error(compressed), "ELGZv1"));
        auto v1 = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::attestation), Bytes{0x81, 0xa0})});
        CHECK(error(v1) ==
              "RA-TLS certificate: V1 attestation: attestation at offset 0: a map of 1 entries cannot fit in the 1 bytes left");
        auto neither = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::attestation), Bytes{0x04, 0x00})});
        CHECK(contains(error(neither), "holds neither a V0 attestation"));
        auto truncated = issue({crypto::dstack_extension(std::string(crypto::dstack_oid::attestation),
                                                         as_bytes(*attestation).subspan(0, 100))});
        CHECK(contains(error(truncated), "RA-TLS certificate: V0 attestation: quote at offset 4: truncated, 5010 bytes needed, 96 left"));
        CHECK(contains(error("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "RA-TLS certificate"));
    }
}
