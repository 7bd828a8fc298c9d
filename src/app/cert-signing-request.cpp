#include "dstack/app/cert-signing-request.hpp"

#include <fmt/format.h>

#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/scale.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::app {
namespace {

// Longer than any confirm text a sender could mean; the exact text is checked after decoding.
constexpr std::size_t max_confirm_size = 64;
constexpr std::string_view compressed_event_log_magic = "ELGZv1";

bool is_msgpack_map(std::uint8_t first) { return (first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf; }

Result<std::optional<std::uint64_t>> optional_u64(scale::Reader& reader, std::string_view what) {
    DSTACK_TRY(auto present, reader.option_tag(what));
    if (!present) return std::optional<std::uint64_t>{};
    DSTACK_TRY(auto value, reader.u64(what));
    return std::optional<std::uint64_t>(value);
}

Result<CertConfig> read_config(scale::Reader& reader, std::uint32_t version) {
    CertConfig config;
    DSTACK_TRY(auto has_org, reader.option_tag("config.org_name"));
    if (has_org) {
        DSTACK_TRY(config.org_name, reader.string("config.org_name", max_certificate_subject_size));
    }
    DSTACK_TRY(config.subject, reader.string("config.subject", max_certificate_subject_size));
    // Each name takes one byte at least (its length prefix).
    DSTACK_TRY(auto names, reader.count("config.subject_alt_names", 1, max_certificate_alt_names));
    config.subject_alt_names.reserve(names);
    for (std::size_t i = 0; i < names; ++i) {
        auto what = fmt::format("config.subject_alt_names[{}]", i);
        DSTACK_TRY(auto name, reader.string(what, max_certificate_alt_name_size));
        config.subject_alt_names.push_back(std::move(name));
    }
    DSTACK_TRY(config.usage_server_auth, reader.boolean("config.usage_server_auth"));
    DSTACK_TRY(config.usage_client_auth, reader.boolean("config.usage_client_auth"));
    DSTACK_TRY(config.ext_quote, reader.boolean("config.ext_quote"));
    if (version == 2) {
        DSTACK_TRY(config.ext_app_info, reader.boolean("config.ext_app_info"));
        DSTACK_TRY(config.not_before, optional_u64(reader, "config.not_before"));
        DSTACK_TRY(config.not_after, optional_u64(reader, "config.not_after"));
    }
    return config;
}

Result<CertSigningRequest> read_request(scale::Reader& reader, std::uint32_t version) {
    CertSigningRequest request;
    request.version = version;
    DSTACK_TRY(request.confirm, reader.string("confirm", max_confirm_size));
    DSTACK_TRY(auto pubkey, reader.byte_vector("pubkey", max_csr_pubkey_size));
    request.pubkey.assign(pubkey.begin(), pubkey.end());
    DSTACK_TRY(request.config, read_config(reader, version));
    if (version == 1) {
        DSTACK_TRY(auto quote, reader.byte_vector("quote"));
        request.quote.assign(quote.begin(), quote.end());
        DSTACK_TRY(auto event_log, reader.byte_vector("event_log", tee::max_event_log_size));
        request.event_log.assign(event_log.begin(), event_log.end());
        if (reader.remaining() != 0)
            return make_error("{} trailing bytes after the request at offset {}", reader.remaining(), reader.offset());
    } else {
        // The versioned attestation is appended as it is and runs to the end: upstream's decoder
        // hands it the rest of the input.
        std::size_t at = reader.offset();
        auto attestation = reader.rest();
        if (attestation.empty()) return make_error("attestation at offset {}: missing (the request ends after config)", at);
        if (attestation.size() > tee::max_attestation_size)
            return make_error("attestation at offset {}: {} bytes, more than the limit of {}", at, attestation.size(),
                              tee::max_attestation_size);
        request.attestation.assign(attestation.begin(), attestation.end());
    }
    return request;
}

Result<tee::Evidence> evidence_v2(ByteView attestation) {
    // Checked when decoding: the attestation is not empty.
    if (attestation[0] == 0x00) {
        DSTACK_TRY(auto evidence, tee::parse_v0_attestation(attestation));
        evidence.source = "SignCert CSR (V0 attestation)";
        return evidence;
    }
    if (is_msgpack_map(attestation[0])) {
        DSTACK_TRY(auto evidence, tee::parse_v1_attestation(attestation));
        evidence.source = "SignCert CSR (V1 attestation)";
        return evidence;
    }
    return make_error("not a versioned attestation (first byte 0x{:02x}; a V0 one starts with 0x00, a V1 one with a "
                      "MessagePack map marker)",
                      attestation[0]);
}

// What upstream's Attestation::from_tdx_quote takes: a quote and its JSON event log, the pair
// that RA-TLS certificates carried in extensions 1.1 and 1.2 (read the same way here).
Result<tee::Evidence> evidence_v1(const CertSigningRequest& request) {
    if (request.quote.empty()) return make_error("quote is empty");
    auto text = as_chars(request.event_log);
    if (text.substr(0, compressed_event_log_magic.size()) == compressed_event_log_magic)
        return make_error("event_log: compressed (ELGZv1) event logs are not supported");
    auto events = tee::parse_event_log_json(text);
    if (!events) return std::move(events).take_error().context("event_log");
    tee::Evidence evidence;
    evidence.quote = request.quote;
    evidence.event_log = std::move(*events);
    evidence.source = "SignCert CSR (quote and event log)";
    return evidence;
}

}  // namespace

Bytes encode_cert_signing_request(const CertSigningRequest& request) {
    scale::Writer out;
    out.string(request.confirm);
    out.byte_vector(request.pubkey);
    const auto& config = request.config;
    out.option_tag(config.org_name.has_value());
    if (config.org_name) out.string(*config.org_name);
    out.string(config.subject);
    out.compact_length(config.subject_alt_names.size());
    for (const auto& name : config.subject_alt_names) out.string(name);
    out.boolean(config.usage_server_auth);
    out.boolean(config.usage_client_auth);
    out.boolean(config.ext_quote);
    if (request.version == 1) {
        out.byte_vector(request.quote);
        out.byte_vector(request.event_log);
        return out.take();
    }
    out.boolean(config.ext_app_info);
    for (const auto& bound : {config.not_before, config.not_after}) {
        out.option_tag(bound.has_value());
        if (bound) out.u64(*bound);
    }
    out.raw(request.attestation);
    return out.take();
}

Result<CertSigningRequest> decode_cert_signing_request(std::uint32_t api_version, ByteView csr) {
    if (api_version != 1 && api_version != 2) return make_error("Unsupported API version: {}", api_version);
    if (csr.size() > max_csr_size)
        return make_error("csr: {} bytes, more than the limit of {}", csr.size(), max_csr_size);
    scale::Reader reader(csr);
    auto request = read_request(reader, api_version);
    if (!request) return std::move(request).take_error().context("csr");
    return request;
}

Result<SignedCertSigningRequest> sign_cert_signing_request(const CertSigningRequest& request,
                                                           const crypto::P256PrivateKey& key) {
    SignedCertSigningRequest out;
    out.csr = encode_cert_signing_request(request);
    DSTACK_TRY(out.signature, key.sign_der(out.csr));
    return out;
}

Result<SignCertRequest> decode_sign_cert_request(std::uint32_t api_version, ByteView csr, ByteView signature) {
    SignCertRequest out;
    DSTACK_TRY(out.csr, decode_cert_signing_request(api_version, csr));
    if (out.csr.confirm != csr_confirm)
        return make_error("csr: confirm: expected \"{}\"", csr_confirm);
    auto point = crypto::p256_public_key_from_spki(out.csr.pubkey);
    if (!point) return std::move(point).take_error().context("csr: pubkey: not a P-256 SubjectPublicKeyInfo");
    out.public_key = std::move(*point);
    auto raw = crypto::p256_signature_der_to_raw(signature);
    if (!raw) return std::move(raw).take_error().context("signature");
    if (!crypto::p256_verify(out.public_key, csr, *raw))
        return make_error("signature: does not verify: the CSR was not signed by the key in csr.pubkey");
    auto evidence = api_version == 2 ? evidence_v2(out.csr.attestation) : evidence_v1(out.csr);
    if (!evidence) return std::move(evidence).take_error().context(api_version == 2 ? "csr: attestation" : "csr");
    out.evidence = std::move(*evidence);
    out.evidence.certificate_spki = out.csr.pubkey;
    return out;
}

}  // namespace dstack::app
