#include "dstack/app/ratls-evidence.hpp"

#include "dstack/crypto/pem.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::app {

Result<tee::Evidence> peer_evidence(const std::vector<Bytes>& peer_chain_der, const crypto::Certificate& issuer) {
    if (peer_chain_der.empty()) return make_error("{}", no_attestation_provided);
    // The leaf, and the issuer we expect rather than whatever the peer sent after its leaf.
    std::string pem = crypto::pem_encode("CERTIFICATE", peer_chain_der.front()) + issuer.pem();
    auto leaf = crypto::Certificate::from_der(peer_chain_der.front());
    if (!leaf) return std::move(leaf).take_error().context("peer certificate");
    auto attestation = leaf->dstack_extension(crypto::dstack_oid::attestation);
    auto legacy = leaf->dstack_extension(crypto::dstack_oid::tdx_quote);
    if (!attestation || !legacy) return make_error("peer certificate: {}", (!attestation ? attestation : legacy).error().message);
    if (!*attestation && !*legacy) return make_error("{}", no_attestation_provided);
    auto evidence = tee::evidence_from_ratls_pem(pem);
    if (!evidence) return std::move(evidence).take_error();
    return std::move(evidence->evidence);
}

}  // namespace dstack::app
