// DCAP quote verification in dcap-qvl's order and words (spec/verifier.md §2.3), so that its test
// suite and its users' expectations carry over; each step is also recorded as a named check.
// The collateral-only steps do not depend on the quote: their outcome (and the PCK chain's) can
// be remembered in a CollateralCache for as long as every date they rest on stays valid.
#include "dstack/tee/dcap.hpp"

#include <algorithm>
#include <array>
#include <list>
#include <mutex>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"
#include "dstack/tee/pki.hpp"

namespace dstack::tee {

std::string_view check_state_name(CheckState state) {
    switch (state) {
        case CheckState::passed: return "passed";
        case CheckState::failed: return "failed";
        case CheckState::not_checked: return "not checked";
    }
    return "not checked";
}

const Check* find_check(const std::vector<Check>& checks, std::string_view id) {
    auto it = std::find_if(checks.begin(), checks.end(), [&](const Check& check) { return check.id == id; });
    return it == checks.end() ? nullptr : &*it;
}

bool is_debug(const Quote& quote) {
    if (const auto* enclave = quote.enclave_report()) return (enclave->attributes[0] & 0x02) != 0;
    if (const auto* td = quote.td_report()) return (td->td_attributes[0] & 0x01) != 0;
    return false;
}

namespace {

// The window of `now` values for which a time-dependent outcome stays the same.
struct TimeWindow {
    UnixSeconds from = INT64_MIN;
    UnixSeconds until = INT64_MAX;

    void narrow(UnixSeconds not_before, UnixSeconds not_after) {
        from = std::max(from, not_before);
        until = std::min(until, not_after);
    }
    bool contains(UnixSeconds now) const { return from <= now && now <= until; }
};

// What the collateral-only steps established, or where they stopped.
struct CollateralOutcome {
    std::vector<Check> crl_checks;         // steps 1-2
    std::optional<Error> crl_error;
    std::vector<Crl> crls;                 // [root CA CRL, PCK CRL]
    std::vector<Check> document_checks;    // steps 4-6
    std::optional<Error> document_error;
    TcbInfo tcb_info;                      // levels sorted
    QeIdentity qe_identity;
    TimeWindow window;
};

struct PckChainOutcome {
    std::optional<Error> error;
    std::vector<crypto::Certificate> chain;
    PckExtension extension;
    TimeWindow window;
};

}  // namespace

struct CollateralCache::State {
    struct Entry {
        Bytes key;
        TimeWindow window;
        std::shared_ptr<const void> value;
    };
    std::mutex mutex;
    std::size_t capacity;
    std::list<Entry> entries;  // most recently used first

    std::shared_ptr<const void> find(const Bytes& key, UnixSeconds now) {
        std::lock_guard lock(mutex);
        for (auto it = entries.begin(); it != entries.end(); ++it) {
            if (it->key != key || !it->window.contains(now)) continue;
            entries.splice(entries.begin(), entries, it);
            return entries.front().value;
        }
        return nullptr;
    }
    void store(Bytes key, TimeWindow window, std::shared_ptr<const void> value) {
        std::lock_guard lock(mutex);
        entries.push_front({std::move(key), window, std::move(value)});
        if (entries.size() > capacity) entries.pop_back();
    }
};

CollateralCache::CollateralCache(std::size_t capacity) : state_(std::make_unique<State>()) {
    state_->capacity = std::max<std::size_t>(capacity, 1);
}
CollateralCache::~CollateralCache() = default;

namespace {

constexpr std::string_view quote_collateral = "quote_collateral";

// A step's stable id and its display name.
struct Step {
    std::string_view id;
    std::string_view name;
};

constexpr Step step_crls{check_id::crls, "CRLs"};
constexpr Step step_quote_format{check_id::quote_format, "quote format"};
constexpr Step step_tcb_info_validity{check_id::tcb_info_validity, "TCB Info validity"};
constexpr Step step_tcb_info_chain{check_id::tcb_info_chain, "TCB Info signing chain"};
constexpr Step step_tcb_info_signature{check_id::tcb_info_signature, "TCB Info signature"};
constexpr Step step_qe_identity_validity{check_id::qe_identity_validity, "QE Identity validity"};
constexpr Step step_qe_identity_chain{check_id::qe_identity_chain, "QE Identity signing chain"};
constexpr Step step_qe_identity_signature{check_id::qe_identity_signature, "QE Identity signature"};
constexpr Step step_qe_identity_kind{check_id::qe_identity_kind, "QE Identity kind"};
constexpr Step step_pck_chain{check_id::pck_chain, "PCK certificate chain"};
constexpr Step step_qe_report_signature{check_id::qe_report_signature, "QE report signature"};
constexpr Step step_qe_report_binding{check_id::qe_report_binding, "QE report binds the attestation key"};
constexpr Step step_qe_identity_match{check_id::qe_identity_match, "QE identity"};
constexpr Step step_quote_signature{check_id::quote_signature, "quote signature"};
constexpr Step step_platform_tcb{check_id::platform_tcb, "platform TCB level"};
constexpr Step step_tcb_status{check_id::tcb_status, "TCB status"};
constexpr Step step_report_attributes{check_id::report_attributes, "report attributes"};

// Every step, in order: those a failure ends the run before are listed as not checked.
constexpr std::array<Step, 17> all_steps = {
    step_crls, step_quote_format, step_tcb_info_validity, step_tcb_info_chain, step_tcb_info_signature,
    step_qe_identity_validity, step_qe_identity_chain, step_qe_identity_signature, step_qe_identity_kind, step_pck_chain,
    step_qe_report_signature, step_qe_report_binding, step_qe_identity_match, step_quote_signature, step_platform_tcb,
    step_tcb_status, step_report_attributes};

Check make_check(Step step, CheckState state, std::string detail) {
    return {std::string(step.id), std::string(step.name), state, std::move(detail)};
}
Check passed(Step step, std::string detail = {}) { return make_check(step, CheckState::passed, std::move(detail)); }
Check failed(Step step, const Error& error) { return make_check(step, CheckState::failed, error.message); }

// A PEM chain: a PEM syntax error is an error; text without certificates is an empty chain (dcap-qvl
// then says the chain is too short).
Result<std::vector<crypto::Certificate>> certificates_in(std::string_view pem) {
    if (pem.find("-----BEGIN") == std::string_view::npos) return std::vector<crypto::Certificate>{};
    DSTACK_TRY(auto blocks, crypto::pem_decode_all(pem));
    std::vector<crypto::Certificate> chain;
    for (const auto& block : blocks) {
        if (block.label != "CERTIFICATE") continue;
        DSTACK_TRY(auto certificate, crypto::Certificate::from_der(block.der));
        chain.push_back(std::move(certificate));
    }
    return chain;
}

// dcap-qvl splits the raw signature at byte 32 and DER-encodes both halves, so what verifies is
// r = the first 32 bytes and s = the rest read as a big-endian integer.
bool verify_raw_signature(ByteView public_key, ByteView message, ByteView signature) {
    if (signature.size() == crypto::p256_signature_size) return crypto::p256_verify(public_key, message, signature);
    auto s = signature.subspan(32);
    while (!s.empty() && s.front() == 0) s = s.subspan(1);
    if (s.size() > 32) return false;
    Bytes normalised(signature.begin(), signature.begin() + 32);
    normalised.resize(64 - s.size(), 0);
    normalised.insert(normalised.end(), s.begin(), s.end());
    return crypto::p256_verify(public_key, message, normalised);
}

void narrow_by_chain(TimeWindow& window, const std::vector<crypto::Certificate>& chain) {
    for (const auto& certificate : chain) window.narrow(certificate.not_before(), certificate.not_after());
}
void narrow_by_crls(TimeWindow& window, const std::vector<Crl>& crls) {
    for (const auto& crl : crls) window.narrow(crl.this_update(), crl.next_update());
}

// Steps 4 and 6: a signed document's dates, issuer chain and signature.
struct SignedDocumentRule {
    std::string_view label;          // "TCB Info" / "QE Identity"
    std::string_view expired;        // dcap-qvl's texts
    std::string_view future;
    std::string_view signature_name; // "tcb_info" / "qe_identity"
    Step validity, chain, signature;
};

Result<void> check_signed_document(const SignedDocumentRule& rule, std::string_view text, ByteView signature,
                                   std::string_view issuer_chain, UnixSeconds issue_date, UnixSeconds next_update,
                                   const crypto::Certificate& anchor, const std::vector<Crl>& crls, UnixSeconds now,
                                   std::vector<Check>& checks, TimeWindow& window) {
    Step dates = rule.validity;
    if (now < issue_date) {
        Error error{std::string(rule.future)};
        checks.push_back(failed(dates, error));
        return error;
    }
    if (now > next_update) {
        Error error{std::string(rule.expired)};
        checks.push_back(failed(dates, error));
        return error;
    }
    window.narrow(issue_date, next_update);
    checks.push_back(passed(dates, fmt::format("valid {} .. {}", format_rfc3339(issue_date), format_rfc3339(next_update))));

    Step chain_name = rule.chain;
    auto chain = certificates_in(issuer_chain);
    if (!chain) {
        auto error = std::move(chain).take_error().context(fmt::format("Failed to parse the {} issuer chain", rule.label));
        checks.push_back(failed(chain_name, error));
        return error;
    }
    if (chain->empty()) {
        Error error{fmt::format("Certificate chain is too short for {}", rule.label)};
        checks.push_back(failed(chain_name, error));
        return error;
    }
    if (auto verified = verify_chain_at(*chain, anchor, crls, now); !verified) {
        auto error = std::move(verified).take_error().context("Failed to verify certificate chain");
        checks.push_back(failed(chain_name, error));
        return error;
    }
    narrow_by_chain(window, *chain);
    checks.push_back(passed(chain_name, chain->front().subject_text()));

    Step signature_check = rule.signature;
    Error bad_signature{fmt::format("Signature is invalid for {} in {}", rule.signature_name, quote_collateral)};
    if (signature.size() < 32) {
        Error error{"Invalid key length"};
        checks.push_back(failed(signature_check, error));
        return error;
    }
    auto key = chain->front().p256_public_key();
    if (!key || !verify_raw_signature(*key, as_bytes(text), signature)) {
        checks.push_back(failed(signature_check, bad_signature));
        return bad_signature;
    }
    checks.push_back(passed(signature_check));
    return {};
}

std::shared_ptr<const CollateralOutcome> evaluate_collateral(const Collateral& collateral, const crypto::Certificate& anchor,
                                                             UnixSeconds now) {
    auto outcome = std::make_shared<CollateralOutcome>();
    auto& window = outcome->window;
    window.narrow(anchor.not_before(), anchor.not_after());

    // Steps 1-2: both CRLs parse and none revokes the trust anchor.
    for (auto [name, der] : {std::pair{"root CA CRL", &collateral.root_ca_crl}, std::pair{"PCK CRL", &collateral.pck_crl}}) {
        auto crl = Crl::from_der(*der);
        if (!crl) {
            outcome->crl_error = std::move(crl).take_error().context(fmt::format("Failed to parse CRL ({})", name));
            outcome->crl_checks.push_back(failed(step_crls, *outcome->crl_error));
            return outcome;
        }
        outcome->crls.push_back(std::move(*crl));
    }
    if (auto ok = check_anchor_not_revoked(anchor, outcome->crls, now); !ok) {
        outcome->crl_error = std::move(ok).take_error();
        outcome->crl_checks.push_back(failed(step_crls, *outcome->crl_error));
        return outcome;
    }
    narrow_by_crls(window, outcome->crls);
    outcome->crl_checks.push_back(passed(step_crls, "root CA CRL and PCK CRL parsed; trust anchor not revoked"));

    // Step 4: TCB info.
    auto& checks = outcome->document_checks;
    auto tcb_info = parse_tcb_info(collateral.tcb_info);
    if (!tcb_info) {
        outcome->document_error = std::move(tcb_info).take_error();  // already says "Failed to decode TcbInfo"
        checks.push_back(failed(step_tcb_info_validity, *outcome->document_error));
        return outcome;
    }
    static constexpr SignedDocumentRule tcb_rule{"TCB Info",          "TCBInfo expired",       "TCBInfo issue date is in the future",
                                                 "tcb_info",          step_tcb_info_validity, step_tcb_info_chain,
                                                 step_tcb_info_signature};
    if (auto ok = check_signed_document(tcb_rule, collateral.tcb_info, collateral.tcb_info_signature,
                                        collateral.tcb_info_issuer_chain, tcb_info->issue_date, tcb_info->next_update,
                                        anchor, outcome->crls, now, checks, window);
        !ok) {
        outcome->document_error = std::move(ok).take_error();
        return outcome;
    }
    // Step 5: platform levels in Intel's canonical order.
    sort_tcb_levels(*tcb_info);
    outcome->tcb_info = std::move(*tcb_info);

    // Step 6: QE identity.
    auto qe_identity = parse_qe_identity(collateral.qe_identity);
    if (!qe_identity) {
        outcome->document_error = std::move(qe_identity).take_error();  // already says "Failed to decode QeIdentity"
        checks.push_back(failed(step_qe_identity_validity, *outcome->document_error));
        return outcome;
    }
    static constexpr SignedDocumentRule qe_rule{"QE Identity", "QE Identity expired", "QE Identity issue date is in the future",
                                                "qe_identity", step_qe_identity_validity, step_qe_identity_chain,
                                                step_qe_identity_signature};
    if (auto ok = check_signed_document(qe_rule, collateral.qe_identity, collateral.qe_identity_signature,
                                        collateral.qe_identity_issuer_chain, qe_identity->issue_date,
                                        qe_identity->next_update, anchor, outcome->crls, now, checks, window);
        !ok) {
        outcome->document_error = std::move(ok).take_error();
        return outcome;
    }
    outcome->qe_identity = std::move(*qe_identity);
    return outcome;
}

// The cache and what every key in it shares for one verification (the collateral's fingerprint
// and the anchor), hashed once per quote: the collateral is tens of KiB.
struct CacheScope {
    CollateralCache* cache = nullptr;
    Bytes collateral_and_anchor;

    Bytes key(std::string_view kind, ByteView extra) const {
        crypto::Hasher hasher(crypto::HashAlgorithm::sha256);
        hasher.update(as_bytes(kind)).update(collateral_and_anchor).update(extra);
        return hasher.finish();
    }
};

CacheScope cache_scope(CollateralCache* cache, const Collateral& collateral, const crypto::Certificate& anchor) {
    CacheScope scope;
    scope.cache = cache;
    if (cache) scope.collateral_and_anchor = crypto::sha256(concat({collateral.fingerprint(), crypto::sha256(anchor.der())}));
    return scope;
}

std::shared_ptr<const CollateralOutcome> collateral_outcome(const Collateral& collateral, const crypto::Certificate& anchor,
                                                            UnixSeconds now, const CacheScope& scope) {
    if (!scope.cache) return evaluate_collateral(collateral, anchor, now);
    auto key = scope.key("collateral", {});
    if (auto hit = scope.cache->state().find(key, now)) return std::static_pointer_cast<const CollateralOutcome>(hit);
    auto outcome = evaluate_collateral(collateral, anchor, now);
    // Only a full success holds across its window; failures are recomputed (and stay exact).
    if (!outcome->crl_error && !outcome->document_error) scope.cache->state().store(std::move(key), outcome->window, outcome);
    return outcome;
}

// Step 8: the PCK chain (collateral's, else the quote's type-5 data) and its SGX extension.
std::shared_ptr<const PckChainOutcome> evaluate_pck_chain(std::string_view chain_pem, const crypto::Certificate& anchor,
                                                          const std::vector<Crl>& crls, UnixSeconds now) {
    auto outcome = std::make_shared<PckChainOutcome>();
    auto chain = certificates_in(chain_pem);
    if (!chain) {
        outcome->error = std::move(chain).take_error().context("Failed to parse PCK certificate");
        return outcome;
    }
    if (chain->size() < 2) {
        outcome->error = Error{"Certificate chain is too short in quote"};
        return outcome;
    }
    if (auto verified = verify_chain_at(*chain, anchor, crls, now); !verified) {
        outcome->error = std::move(verified).take_error().context("Failed to verify certificate chain");
        return outcome;
    }
    auto extension = parse_pck_extension(chain->front());
    if (!extension) {
        outcome->error = std::move(extension).take_error().context("Failed to parse PCK certificate extension");
        return outcome;
    }
    narrow_by_chain(outcome->window, *chain);
    narrow_by_crls(outcome->window, crls);
    outcome->chain = std::move(*chain);
    outcome->extension = std::move(*extension);
    return outcome;
}

std::shared_ptr<const PckChainOutcome> pck_chain_outcome(std::string_view chain_pem, const crypto::Certificate& anchor,
                                                         const std::vector<Crl>& crls, UnixSeconds now,
                                                         const CacheScope& scope) {
    if (!scope.cache) return evaluate_pck_chain(chain_pem, anchor, crls, now);
    auto key = scope.key("pck-chain", as_bytes(chain_pem));
    if (auto hit = scope.cache->state().find(key, now)) return std::static_pointer_cast<const PckChainOutcome>(hit);
    auto outcome = evaluate_pck_chain(chain_pem, anchor, crls, now);
    if (!outcome->error) scope.cache->state().store(std::move(key), outcome->window, outcome);
    return outcome;
}

// Step 9. A platform's QE signs one QE report per attestation key, and every quote made with
// that key carries the same report and signature: with a cache, a signature already verified
// under this exact PCK certificate (and still inside its chain's validity) is not verified again.
bool qe_report_signed_by_pck(const Quote& quote, const PckChainOutcome& pck, UnixSeconds now, const CacheScope& scope) {
    const auto& auth = quote.auth;
    Bytes key;
    if (scope.cache) {
        key = scope.key("qe-report", concat({pck.chain.front().der(), auth.qe_report_bytes, auth.qe_report_signature}));
        if (scope.cache->state().find(key, now)) return true;
    }
    auto pck_key = pck.chain.front().p256_public_key();
    if (!pck_key || !crypto::p256_verify(*pck_key, auth.qe_report_bytes, auth.qe_report_signature)) return false;
    if (scope.cache) scope.cache->state().store(std::move(key), pck.window, std::make_shared<const bool>(true));
    return true;
}

// Step 3's header rules, after the structural decode.
Result<void> check_quote_header(const Quote& quote) {
    const auto& header = quote.header;
    if (header.version < 3 || header.version > 5) return make_error("Unsupported DCAP quote version");
    if (header.qe_vendor_id != intel_qe_vendor_id) return make_error("Unknown QE vendor ID");
    if (header.tee_type != tee_type_sgx && header.tee_type != tee_type_tdx)
        return make_error("Unsupported TEE type: {}", header.tee_type);
    if (header.tee_type == tee_type_sgx && header.version != 3) return make_error("SGX TEE quote must have version 3");
    if (header.tee_type == tee_type_tdx && header.version != 4 && header.version != 5)
        return make_error("TDX TEE quote must have version 4 or 5");
    if (header.attestation_key_type != attestation_key_type_ecdsa_p256)
        return make_error("Unsupported DCAP attestation key type");
    return {};
}

// Step 7.
Result<void> check_qe_identity_kind(const QeIdentity& identity, bool tdx) {
    bool ok = tdx ? identity.id == "TD_QE" && (identity.version == 2 || identity.version == 3)
                  : identity.id == "QE" && identity.version == 2;
    if (!ok)
        return make_error("Unsupported QE Identity id/version for the quote TEE type: id {}, version {}, quote is {}",
                          identity.id, identity.version, tdx ? "TDX" : "SGX");
    return {};
}

std::uint32_t read_u32_le(ByteView bytes) {
    return std::uint32_t(bytes[0]) | std::uint32_t(bytes[1]) << 8 | std::uint32_t(bytes[2]) << 16 | std::uint32_t(bytes[3]) << 24;
}

// Step 11: the QE's identity and its TCB level.
Result<TcbVerdict> check_qe_identity_policy(const EnclaveReport& qe, const QeIdentity& identity) {
    if (!std::equal(qe.mr_signer.begin(), qe.mr_signer.end(), identity.mr_signer.begin(), identity.mr_signer.end()))
        return make_error("QE MRSIGNER mismatch: expected {}, got {}", hex_encode(identity.mr_signer), hex_encode(qe.mr_signer));
    if (qe.attributes[0] & 0x02) return Error{"Debug mode is enabled"}.context("QE report validation failed");
    if (qe.isv_prod_id != identity.isv_prod_id)
        return make_error("QE ISVPRODID mismatch: expected {}, got {}", identity.isv_prod_id, qe.isv_prod_id);
    std::uint32_t mask = read_u32_le(identity.misc_select_mask);
    if ((qe.misc_select & mask) != (read_u32_le(identity.misc_select) & mask))
        return make_error("QE MISCSELECT mismatch: expected {:08x} under mask {:08x}, got {:08x}", read_u32_le(identity.misc_select),
                          mask, qe.misc_select);
    for (std::size_t i = 0; i < qe.attributes.size(); ++i)
        if ((qe.attributes[i] & identity.attributes_mask[i]) != (identity.attributes[i] & identity.attributes_mask[i]))
            return make_error("QE ATTRIBUTES mismatch at byte {}", i);
    if (identity.tcb_levels.empty()) return make_error("No TCB levels found in QE Identity");
    for (const auto& level : identity.tcb_levels)
        if (qe.isv_svn >= level.isv_svn) return level.verdict;
    return make_error("QE ISVSVN {} is below minimum required {} from QE Identity", qe.isv_svn, identity.tcb_levels.back().isv_svn);
}

// Step 13 (first part): the first canonical platform level the PCK TCB (and the TD's TEE TCB) meets.
Result<TcbVerdict> match_platform_tcb(const TcbInfo& info, const PckExtension& pck, const Quote& quote) {
    if (!std::equal(pck.fmspc.begin(), pck.fmspc.end(), info.fmspc.begin(), info.fmspc.end()))
        return make_error("Fmspc mismatch: PCK certificate {}, TCB Info {}", hex_encode(pck.fmspc), hex_encode(info.fmspc));
    const TdReport10* td = quote.td_report();
    if (td && !info.is_tdx()) return make_error("TDX quote with non-TDX TCB info in the collateral");
    if (!td && !(info.version >= 2 && info.id == "SGX")) return make_error("SGX quote with non-SGX TCB info in the collateral");
    for (const auto& level : info.tcb_levels) {
        if (pck.pce_svn < level.pce_svn) continue;
        if (level.sgx_components.size() != 16)
            return make_error("SGX component count mismatch: expected 16, got {}", level.sgx_components.size());
        bool below = false;
        for (std::size_t i = 0; i < 16; ++i) below = below || pck.cpu_svn[i] < level.sgx_components[i];
        if (below) continue;
        if (td) {
            if (level.tdx_components.size() != 16)
                return make_error("TDX component count mismatch: expected 16, got {}", level.tdx_components.size());
            for (std::size_t i = 0; i < 16; ++i) below = below || td->tee_tcb_svn[i] < level.tdx_components[i];
            if (below) continue;
        }
        return level.verdict;
    }
    return make_error("No matching TCB level found");
}

// Step 13 (second part, TDX): the TDX module's signer, attributes and (with an identity) TCB level.
Result<std::optional<TcbVerdict>> match_tdx_module(const TcbInfo& info, const TdReport10& td) {
    if (!info.tdx_module) return make_error("TDX TCB Info is missing tdxModule field");
    const Bytes* mr_signer = &info.tdx_module->mr_signer;
    const Bytes* attributes = &info.tdx_module->attributes;
    const Bytes* mask = &info.tdx_module->attributes_mask;
    const TdxModuleIdentity* identity = nullptr;
    if (td.tee_tcb_svn[1] > 0 && !info.tdx_module_identities.empty()) {
        std::string wanted = fmt::format("TDX_{:02X}", td.tee_tcb_svn[1]);
        for (const auto& candidate : info.tdx_module_identities) {
            bool same = candidate.id.size() == wanted.size() &&
                        std::equal(wanted.begin(), wanted.end(), candidate.id.begin(),
                                   [](char a, char b) { return std::toupper(static_cast<unsigned char>(a)) ==
                                                               std::toupper(static_cast<unsigned char>(b)); });
            if (same) { identity = &candidate; break; }
        }
        if (!identity) return make_error("No TDX module identity with id {} found in TCB Info", wanted);
        mr_signer = &identity->mr_signer;
        attributes = &identity->attributes;
        mask = &identity->attributes_mask;
    }
    if (!std::equal(td.mr_signer_seam.begin(), td.mr_signer_seam.end(), mr_signer->begin(), mr_signer->end()))
        return make_error("TDX module MRSIGNER mismatch: expected {}, got {}", hex_encode(*mr_signer), hex_encode(td.mr_signer_seam));
    if (attributes->size() != td.seam_attributes.size() || mask->size() != td.seam_attributes.size())
        return make_error("TDX module attributes in the TCB Info are not 8 bytes");
    for (std::size_t i = 0; i < td.seam_attributes.size(); ++i) {
        if ((td.seam_attributes[i] & (*mask)[i]) != ((*attributes)[i] & (*mask)[i]))
            return make_error("TDX module SEAMATTRIBUTES mismatch at byte {}", i);
        if (td.seam_attributes[i] & ~(*mask)[i]) return make_error("TDX module SEAMATTRIBUTES has bits set outside mask at byte {}", i);
    }
    if (!identity) return std::optional<TcbVerdict>{};
    for (const auto& level : identity->tcb_levels)
        if (td.tee_tcb_svn[0] >= level.isv_svn) return std::optional<TcbVerdict>{level.verdict};
    return make_error("TDX module ISVSVN {} is below minimum required from TDX module TCB levels", td.tee_tcb_svn[0]);
}

bool all_zero(ByteView bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

// Step 15: the TD's (or enclave's) attributes.
Result<void> check_report_attributes(const Quote& quote, const DcapOptions& options) {
    if (const auto* enclave = quote.enclave_report()) {
        if ((enclave->attributes[0] & 0x02) && !options.allow_debug) return make_error("Debug mode is enabled");
        return {};
    }
    if (const auto* td15 = std::get_if<TdReport15>(&quote.body)) {
        if (!all_zero(td15->mr_service_td) && !options.allow_service_td) return make_error("Invalid MR service TD");
    }
    const auto& attributes = quote.td_report()->td_attributes;
    Error reserved{"Reserved bits in TD attributes are set"};
    if (attributes[0] & 0xFE) return reserved;                      // TUD bits 7:1
    if ((attributes[0] & 0x01) && !options.allow_debug) return make_error("Debug mode is enabled");
    if (attributes[1] || attributes[2] || (attributes[3] & 0x0F))   // SEC bits 27:8
        return reserved;
    if (attributes[3] & 0x20) return reserved;                      // SEC bit 29
    // OTHER bits 63:32. Bit 63 (PERFMON) is rejected too, as dcap-qvl does; bit 39 is reserved as
    // Intel defines it (dcap-qvl forgets it: a deliberate, stricter difference).
    if (attributes[4] || attributes[5] || attributes[6] || attributes[7]) return reserved;
    if (!(attributes[3] & 0x10)) return make_error("SEPT_VE_DISABLE is not enabled");
    return {};
}

// What step 15 established; a debug TD or enclave passes it only when the policy allows debug.
std::string report_attributes_text(const Quote& quote) {
    bool debug = is_debug(quote);
    if (!quote.is_tdx()) return debug ? "debug enclave (allowed by the policy)" : "not a debug enclave";
    return fmt::format("{}, no reserved bits, SEPT_VE_DISABLE set", debug ? "debug TD (allowed by the policy)" : "not a debug TD");
}

// Runs the steps and records each; the first failure ends the run and names the rest "not checked".
class Pipeline {
public:
    explicit Pipeline(DcapResult& result) : result_(result) {}

    void record(std::vector<Check> checks) {
        for (auto& check : checks) result_.checks.push_back(std::move(check));
    }
    void pass(Step step, std::string detail = {}) { result_.checks.push_back(passed(step, std::move(detail))); }
    void fail(Step step, Error error) {
        result_.checks.push_back(failed(step, error));
        result_.error = std::move(error);
    }
    // Marks the steps after a failure.
    void skip_rest() {
        for (auto step : all_steps)
            if (!find_check(result_.checks, step.id))
                result_.checks.push_back(make_check(step, CheckState::not_checked, "an earlier check failed"));
    }

private:
    DcapResult& result_;
};

std::string verdict_text(const TcbVerdict& verdict) {
    if (verdict.advisory_ids.empty()) return std::string(tcb_status_name(verdict.status));
    std::string text = fmt::format("{} (", tcb_status_name(verdict.status));
    for (std::size_t i = 0; i < verdict.advisory_ids.size(); ++i) text += (i ? ", " : "") + verdict.advisory_ids[i];
    return text + ")";
}

void run_pipeline(const ParsedQuote& parsed, const Collateral& collateral, const DcapOptions& options, DcapResult& result) {
    Pipeline steps(result);
    const crypto::Certificate& anchor = options.trust_anchor ? *options.trust_anchor : intel_sgx_root_ca();
    UnixSeconds now = options.now;

    // Steps 1-2.
    auto scope = cache_scope(options.cache, collateral, anchor);
    auto outcome = collateral_outcome(collateral, anchor, now, scope);
    steps.record(outcome->crl_checks);
    if (outcome->crl_error) {
        result.error = outcome->crl_error;
        return;
    }

    // Step 3.
    if (!parsed.quote) return steps.fail(step_quote_format, parsed.quote.error().context("Failed to decode quote"));
    const Quote* quote = &*parsed.quote;
    if (auto ok = check_quote_header(*quote); !ok) return steps.fail(step_quote_format, std::move(ok).take_error());
    steps.pass(step_quote_format, fmt::format("{} v{}{}", quote->is_tdx() ? "TDX" : "SGX", quote->header.version,
                                           std::holds_alternative<TdReport15>(quote->body) ? " (TD 1.5 body)" : ""));

    // Steps 4-6.
    steps.record(outcome->document_checks);
    if (outcome->document_error) {
        result.error = outcome->document_error;
        return;
    }
    const TcbInfo& tcb_info = outcome->tcb_info;
    const QeIdentity& qe_identity = outcome->qe_identity;

    // Step 7.
    if (auto ok = check_qe_identity_kind(qe_identity, quote->is_tdx()); !ok)
        return steps.fail(step_qe_identity_kind, std::move(ok).take_error());
    steps.pass(step_qe_identity_kind, fmt::format("{} v{}", qe_identity.id, qe_identity.version));

    // Step 8.
    std::string chain_pem;
    if (collateral.pck_certificate_chain) {
        chain_pem = *collateral.pck_certificate_chain;
    } else if (quote->auth.certification_data_type == cert_type_pck_chain) {
        chain_pem.assign(as_chars(quote->auth.certification_data));
    } else {
        return steps.fail(step_pck_chain,
                          make_error("Unsupported DCAP PCK cert format: {}. Use CollateralClient::fetch() to obtain the PCK "
                                     "certificate.",
                                     quote->auth.certification_data_type));
    }
    auto pck = pck_chain_outcome(chain_pem, anchor, outcome->crls, now, scope);
    if (pck->error) return steps.fail(step_pck_chain, *pck->error);
    steps.pass(step_pck_chain, fmt::format("FMSPC {}, issued by {}", hex_encode(pck->extension.fmspc),
                                                    pck->chain.size() > 1 ? pck->chain[1].subject_text() : "?"));

    // Step 9.
    if (!qe_report_signed_by_pck(*quote, *pck, now, scope))
        return steps.fail(step_qe_report_signature, Error{"Signature is invalid for qe_report in quote"});
    steps.pass(step_qe_report_signature);

    // Step 10.
    const auto& auth = quote->auth;
    if (auth.qe_auth_data.size() != 32)
        return steps.fail(step_qe_report_binding, Error{"Invalid QE auth data length"});
    auto expected = crypto::sha256(concat({auth.ecdsa_attestation_key, auth.qe_auth_data}));
    if (!std::equal(expected.begin(), expected.end(), auth.qe_report.report_data.begin()))
        return steps.fail(step_qe_report_binding, Error{"QE report hash mismatch"});
    steps.pass(step_qe_report_binding);

    // Step 11.
    auto qe_verdict = check_qe_identity_policy(auth.qe_report, qe_identity);
    if (!qe_verdict) return steps.fail(step_qe_identity_match, std::move(qe_verdict).take_error());
    steps.pass(step_qe_identity_match, fmt::format("ISVSVN {}: {}", auth.qe_report.isv_svn, verdict_text(*qe_verdict)));

    // Step 12.
    Bytes attestation_key = concat({std::array<std::uint8_t, 1>{0x04}, auth.ecdsa_attestation_key});
    if (!crypto::p256_verify(attestation_key, parsed.raw.first(quote->signed_length), auth.ecdsa_signature))
        return steps.fail(step_quote_signature, Error{"ISV enclave report signature is invalid"});
    steps.pass(step_quote_signature);

    // Step 13.
    auto platform = match_platform_tcb(tcb_info, pck->extension, *quote);
    if (!platform) return steps.fail(step_platform_tcb, std::move(platform).take_error());
    TcbVerdict platform_verdict = *platform;
    if (const auto* td = quote->td_report()) {
        auto module = match_tdx_module(tcb_info, *td);
        if (!module) return steps.fail(step_platform_tcb, std::move(module).take_error().context("TDX module identity check"));
        if (*module) platform_verdict = platform_verdict.merge(**module);
    }
    steps.pass(step_platform_tcb, verdict_text(platform_verdict));

    // Step 14.
    TcbVerdict verdict = platform_verdict.merge(*qe_verdict);
    if (verdict.status == TcbStatus::revoked) return steps.fail(step_tcb_status, Error{"TCB status is invalid: Revoked"});
    steps.pass(step_tcb_status, verdict_text(verdict));

    // Step 15.
    if (auto ok = check_report_attributes(*quote, options); !ok) return steps.fail(step_report_attributes, std::move(ok).take_error());
    steps.pass(step_report_attributes, report_attributes_text(*quote));

    DcapReport report;
    report.verdict = std::move(verdict);
    report.platform_verdict = std::move(platform_verdict);
    report.qe_verdict = std::move(*qe_verdict);
    report.pck = pck->extension;
    report.ppid = pck->extension.ppid;
    report.quote = *quote;
    result.report = std::move(report);
}

}  // namespace

DcapResult verify_quote(const ParsedQuote& quote, const Collateral& collateral, const DcapOptions& options) {
    DcapResult result;
    run_pipeline(quote, collateral, options, result);
    if (!result.report) Pipeline(result).skip_rest();
    return result;
}

Result<void> verify_collateral(const Collateral& collateral, const DcapOptions& options) {
    const crypto::Certificate& anchor = options.trust_anchor ? *options.trust_anchor : intel_sgx_root_ca();
    auto scope = cache_scope(options.cache, collateral, anchor);
    auto outcome = collateral_outcome(collateral, anchor, options.now, scope);
    if (outcome->crl_error) return *outcome->crl_error;
    if (outcome->document_error) return *outcome->document_error;
    if (!collateral.pck_certificate_chain) return {};
    auto pck = pck_chain_outcome(*collateral.pck_certificate_chain, anchor, outcome->crls, options.now, scope);
    if (pck->error) return *pck->error;
    return {};
}

DcapResult verify_quote(ByteView raw_quote, const Collateral& collateral, const DcapOptions& options) {
    return verify_quote(ParsedQuote(raw_quote), collateral, options);
}

}  // namespace dstack::tee
