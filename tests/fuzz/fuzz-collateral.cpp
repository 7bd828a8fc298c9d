// libFuzzer target: collateral JSON, the signed TCB info / QE identity documents inside it, the PCS
// responses that wrap them and CRLs all come from a collateral server; garbage must give an error,
// and what is accepted must survive a round trip.
#include <cstdlib>

#include "dstack/tee/collateral.hpp"
#include "dstack/tee/pki.hpp"
#include "dstack/tee/tcb-info.hpp"

using namespace dstack;
using namespace dstack::tee;

namespace {

bool same_collateral(const Collateral& a, const Collateral& b) {
    return a.pck_crl_issuer_chain == b.pck_crl_issuer_chain && a.root_ca_crl == b.root_ca_crl && a.pck_crl == b.pck_crl &&
           a.tcb_info_issuer_chain == b.tcb_info_issuer_chain && a.tcb_info == b.tcb_info &&
           a.tcb_info_signature == b.tcb_info_signature && a.qe_identity_issuer_chain == b.qe_identity_issuer_chain &&
           a.qe_identity == b.qe_identity && a.qe_identity_signature == b.qe_identity_signature &&
           a.pck_certificate_chain == b.pck_certificate_chain;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto collateral = parse_collateral_json(text)) {
        auto json = collateral_to_json(*collateral);
        auto again = parse_collateral_json(json);
        if (!again || !same_collateral(*again, *collateral) || collateral_to_json(*again) != json ||
            again->fingerprint() != collateral->fingerprint())
            std::abort();
        (void)parse_tcb_info(collateral->tcb_info);
        (void)parse_qe_identity(collateral->qe_identity);
        (void)Crl::from_der(collateral->root_ca_crl);
    }

    if (auto info = parse_tcb_info(text)) {
        sort_tcb_levels(*info);
        for (std::size_t i = 1; i < info->tcb_levels.size(); ++i)
            if (info->tcb_levels[i - 1].sgx_components < info->tcb_levels[i].sgx_components) std::abort();
        TcbVerdict verdict;
        for (const auto& level : info->tcb_levels) verdict = verdict.merge(level.verdict);
        (void)tcb_status_name(verdict.status);
    }
    (void)parse_qe_identity(text);

    for (std::string_view key : {"tcbInfo", "enclaveIdentity"}) {
        auto split = split_signed_document(text, key);
        if (!split) continue;
        // The body is a span of the input, never a re-serialisation, and is itself an object.
        if (text.find(split->body) == std::string_view::npos || split->body.empty() || split->body.front() != '{' ||
            split->body.back() != '}')
            std::abort();
        (void)parse_tcb_info(split->body);
    }

    if (auto crl = Crl::from_der(ByteView(data, size))) {
        (void)crl->lists_serial(ByteView(data, size < 20 ? size : 20));
        (void)crl->issuer_der();
    }
    return 0;
}
