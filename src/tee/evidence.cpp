// What `dstack verify` accepts as evidence, recognised by its first bytes: JSON requests and
// GetQuote responses, RA-TLS certificates, hex text, V0 and V1 attestations and bare quotes.
#include <algorithm>
#include <cctype>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::tee {
namespace {

// Requests and GetQuote responses are flat objects with one event-log array at most.
constexpr json::ReadLimits json_limits{max_attestation_size, 16};
constexpr std::size_t report_data_size = 64;
constexpr std::string_view pem_certificate_header = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view compressed_event_log_magic = "ELGZv1";


bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim_leading_space(std::string_view text) {
    while (!text.empty() && is_json_space(text.front())) text.remove_prefix(1);
    return text;
}

// Hex text with any whitespace and one optional 0x prefix; nullopt when the text is not that.
std::optional<std::string> hex_text(std::string_view text) {
    std::string digits;
    digits.reserve(text.size());
    for (char c : text) {
        if (!std::isspace(static_cast<unsigned char>(c))) digits.push_back(c);
    }
    std::string_view body = digits;
    if (body.size() >= 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) body.remove_prefix(2);
    if (body.empty() || !std::all_of(body.begin(), body.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
        return std::nullopt;
    }
    return std::string(body);
}

bool is_msgpack_map(std::uint8_t first) { return (first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf; }

Result<Evidence> read_binary(ByteView bytes, std::string_view encoding) {
    if (bytes.empty()) return make_error("evidence is empty");
    if (bytes[0] == 0x00) {
        // A quote starts with its version (3, 4 or 5), so a leading zero is only ever V0.
        DSTACK_TRY(auto evidence, parse_v0_attestation(bytes));
        evidence.source = fmt::format("V0 attestation{}", encoding);
        return evidence;
    }
    if (is_msgpack_map(bytes[0])) {
        // A quote's version is 3, 4 or 5, never a map marker (0x80-0x8f, 0xde, 0xdf).
        DSTACK_TRY(auto evidence, parse_v1_attestation(bytes));
        evidence.source = fmt::format("V1 attestation{}", encoding);
        return evidence;
    }
    Evidence evidence;
    evidence.quote.assign(bytes.begin(), bytes.end());
    evidence.source = fmt::format("raw quote{}", encoding);
    return evidence;
}

std::string serialize(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

// GetQuote responses carry the event log as a string holding a JSON array; an array is taken too.
Result<std::vector<TdxEvent>> event_log_member(const json::Value& value) {
    if (value.is_array()) return event_log_from_json(value);
    if (!value.is_string()) return value.type_error("a JSON array or a string holding one");
    auto text = *value.string();
    if (trim_leading_space(text).empty()) return std::vector<TdxEvent>{};
    auto events = parse_event_log_json(text);
    if (!events) return std::move(events).take_error().context(value.path());
    return events;
}

Result<Evidence> read_json(std::string_view text) {
    auto document = json::read_json(text, json_limits);
    if (!document) return std::move(document).take_error().context("evidence JSON");
    auto root = document->root().object();
    if (!root) return std::move(root).take_error().context("evidence JSON");

    // As dstack-verifier: an attestation makes the request's other fields irrelevant.
    if (auto attestation = root->optional("attestation")) {
        DSTACK_TRY(auto bytes, attestation->hex());
        if (bytes.empty() || (bytes[0] != 0x00 && !is_msgpack_map(bytes[0]))) {
            return make_error("{} is not a versioned attestation (a V0 one starts with byte 0x00, a V1 one with a "
                              "MessagePack map marker)", attestation->path());
        }
        return read_binary(bytes, " (JSON)");
    }
    auto quote = root->optional("quote");
    if (!quote) return make_error("evidence JSON has neither an 'attestation' nor a 'quote'");
    Evidence evidence;
    evidence.source = "GetQuote response";
    DSTACK_TRY(evidence.quote, quote->hex());
    if (auto event_log = root->optional("event_log")) {
        DSTACK_TRY(evidence.event_log, event_log_member(*event_log));
    }
    if (auto report_data = root->optional("report_data")) {
        DSTACK_TRY(auto bytes, report_data->hex(report_data_size));
        evidence.report_data = std::move(bytes);
    }
    if (auto vm_config = root->optional("vm_config")) {
        if (vm_config->is_string()) evidence.vm_config = *vm_config->string();
        else if (vm_config->is_object()) evidence.vm_config = serialize(vm_config->raw());
        else return vm_config->type_error("a JSON string or an object");
    }
    return evidence;
}

}  // namespace

Result<RaTlsEvidence> evidence_from_ratls_pem(std::string_view pem) {
    auto certificates = crypto::Certificate::chain_from_pem(pem);
    if (!certificates) return std::move(certificates).take_error().context("RA-TLS certificate");
    if (certificates->size() > max_ratls_certificates)
        return make_error("RA-TLS certificate: the PEM holds {} certificates, at most {} (the certificate and its issuers) "
                          "are accepted", certificates->size(), max_ratls_certificates);
    const crypto::Certificate certificate = certificates->front();
    RaTlsEvidence out;
    out.spki_der = certificate.spki_der();

    DSTACK_TRY(auto attestation, certificate.dstack_extension(crypto::dstack_oid::attestation));
    if (attestation) {
        bool v1 = !attestation->empty() && is_msgpack_map(attestation->front());
        if (attestation->empty() || (attestation->front() != 0x00 && !v1)) {
            return make_error("RA-TLS certificate: the attestation extension holds neither a V0 attestation (first byte "
                              "0x00) nor a V1 one (a MessagePack map)");
        }
        auto evidence = v1 ? parse_v1_attestation(*attestation) : parse_v0_attestation(*attestation);
        if (!evidence) return std::move(evidence).take_error().context("RA-TLS certificate");
        out.evidence = std::move(*evidence);
        out.evidence.certificates = std::move(*certificates);
        out.evidence.source = v1 ? "RA-TLS certificate (V1 attestation)" : "RA-TLS certificate (V0 attestation)";
        out.evidence.certificate_spki = out.spki_der;
        return out;
    }

    DSTACK_TRY(auto quote, certificate.dstack_extension(crypto::dstack_oid::tdx_quote));
    if (!quote) {
        return make_error("RA-TLS certificate carries no attestation (neither extension {} nor {})",
                          crypto::dstack_oid::attestation, crypto::dstack_oid::tdx_quote);
    }
    DSTACK_TRY(auto event_log, certificate.dstack_extension(crypto::dstack_oid::event_log));
    if (!event_log) {
        return make_error("RA-TLS certificate has a quote but no event log (extension {})",
                          crypto::dstack_oid::event_log);
    }
    if (as_chars(*event_log).substr(0, compressed_event_log_magic.size()) == compressed_event_log_magic) {
        return make_error("RA-TLS certificate: compressed (ELGZv1) event logs are not supported");
    }
    auto events = parse_event_log_json(as_chars(*event_log));
    if (!events) return std::move(events).take_error().context("RA-TLS certificate event log");
    out.evidence.quote = std::move(*quote);
    out.evidence.event_log = std::move(*events);
    out.evidence.source = "RA-TLS certificate (quote and event log)";
    out.evidence.certificate_spki = out.spki_der;
    out.evidence.certificates = std::move(*certificates);
    return out;
}

Result<Evidence> read_evidence(ByteView input) {
    if (input.size() > max_attestation_size) {
        return make_error("evidence is {} bytes, more than the limit of {}", input.size(), max_attestation_size);
    }
    auto text = trim_leading_space(as_chars(input));
    if (!text.empty() && text.front() == '{') return read_json(text);
    if (text.substr(0, pem_certificate_header.size()) == pem_certificate_header) {
        DSTACK_TRY(auto ratls, evidence_from_ratls_pem(text));
        return std::move(ratls.evidence);
    }
    if (text.substr(0, 5) == "-----") return make_error("PEM input is not a certificate");
    if (auto digits = hex_text(text)) {
        auto bytes = hex_decode(*digits);
        if (!bytes) return std::move(bytes).take_error().context("hex evidence");
        return read_binary(*bytes, " (hex)");
    }
    return read_binary(input, "");
}

}  // namespace dstack::tee
