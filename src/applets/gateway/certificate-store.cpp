#include "certificate-store.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::applets::gateway {
namespace {

constexpr UnixSeconds self_signed_lifetime = 90LL * 86400;

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    return std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
}

}  // namespace

std::string_view source_name(CertificateSource source) {
    switch (source) {
        case CertificateSource::acme: return "acme";
        case CertificateSource::static_file: return "static";
        case CertificateSource::self_signed: return "self-signed";
    }
    return "unknown";
}

Result<std::string> normalize_domain(std::string_view domain) {
    std::string name = lowercase(domain);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    std::size_t start = 0;
    while (start < name.size() && std::isspace(static_cast<unsigned char>(name[start]))) ++start;
    name.erase(0, start);
    if (name.size() >= 2 && name.compare(0, 2, "*.") == 0) name.erase(0, 2);
    if (!name.empty() && name.back() == '.') name.pop_back();
    if (name.empty()) return make_error("domain name is empty");
    if (name.size() > 253) return make_error("domain name {:?}... is longer than 253 bytes", name.substr(0, 32));
    std::size_t begin = 0;
    for (;;) {
        std::size_t dot = name.find('.', begin);
        std::string_view label = std::string_view(name).substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
        if (!valid_label(label)) {
            return make_error("{:?} is not a domain name (labels of 1 to 63 letters, digits, '-' or '_', not starting or "
                              "ending with '-')",
                              std::string(domain));
        }
        if (dot == std::string::npos) break;
        begin = dot + 1;
    }
    return name;
}

Result<DomainCertificate> check_domain_certificate(std::string domain, std::string chain_pem, std::string key_pem,
                                                   CertificateSource source, UnixSeconds now) {
    DSTACK_TRY(domain, normalize_domain(domain));
    auto chain = crypto::Certificate::chain_from_pem(chain_pem);
    if (!chain) return make_error("certificate for {}: {}", domain, chain.error().message);
    if (chain->empty()) return make_error("certificate for {}: no certificate in the chain", domain);
    const auto& leaf = chain->front();
    if (leaf.not_after() <= now) return make_error("certificate for {}: expired at {}", domain, format_rfc3339(leaf.not_after()));
    if (leaf.not_before() > now + 300) {
        return make_error("certificate for {}: not valid before {}", domain, format_rfc3339(leaf.not_before()));
    }
    std::string wildcard = "*." + domain;
    auto names = leaf.subject_alt_names();
    bool covered = std::any_of(names.begin(), names.end(), [&](const std::string& name) { return lowercase(name) == wildcard; });
    if (!covered) return make_error("certificate for {}: its names do not include {}", domain, wildcard);
    // The key must be the leaf's: a mismatch would fail every handshake after the swap.
    auto key = crypto::P256PrivateKey::from_pem(key_pem);
    auto leaf_key = leaf.p256_public_key();
    if (key && leaf_key) {
        if (key->public_key() != *leaf_key) return make_error("certificate for {}: the key does not match the certificate", domain);
    } else {
        // Other key types: mbedTLS checks the pair when it builds a context.
        net::tls::ServerConfig probe;
        probe.certificate = {chain_pem, key_pem};
        if (auto made = net::tls::make_server_context(std::move(probe)); !made) {
            return make_error("certificate for {}: {}", domain, made.error().message);
        }
    }
    for (std::size_t i = 0; i + 1 < chain->size(); ++i) {
        // Names must chain (signatures of other key types than P-256 are the client's to check).
        if ((*chain)[i].issuer_der() != (*chain)[i + 1].subject_der()) {
            return make_error("certificate for {}: certificate {} of the chain is not issued by the next one", domain, i);
        }
    }
    bool self_signed = leaf.issuer_der() == leaf.subject_der() && leaf.verify_signature_by(leaf).ok();
    if (source == CertificateSource::acme && self_signed) {
        return make_error("certificate for {}: a self-signed certificate is not an ACME certificate", domain);
    }
    DomainCertificate out;
    out.domain = std::move(domain);
    out.source = source;
    out.self_signed = self_signed;
    out.not_before = leaf.not_before();
    out.not_after = leaf.not_after();
    if (self_signed) {
        out.issuer = leaf.subject_text();
    } else if (chain->size() > 1 && leaf.issuer_der() == (*chain)[1].subject_der()) {
        out.issuer = (*chain)[1].subject_text();
    } else {
        out.issuer = "(issuer not in the chain)";
    }
    out.serial_hex = hex_encode(leaf.serial());
    out.sha256_hex = hex_encode(crypto::sha256(leaf.der()));
    out.public_key_der = leaf.spki_der();
    out.pem = {std::move(chain_pem), std::move(key_pem)};
    return out;
}

Result<DomainCertificate> make_self_signed_wildcard(std::string domain, UnixSeconds now) {
    DSTACK_TRY(domain, normalize_domain(domain));
    DSTACK_TRY(auto key, crypto::P256PrivateKey::generate());
    crypto::CertificateSpec spec;
    spec.subject.organization = "dstack gateway (self-signed)";
    spec.subject.common_name = "*." + domain;
    spec.not_before = now - 300;
    spec.not_after = now + self_signed_lifetime;
    spec.subject_alt_names = {"*." + domain, domain};
    spec.server_auth = true;
    spec.authority_key_identifier = false;
    DSTACK_TRY(auto der, crypto::write_self_signed_certificate(spec, key));
    DSTACK_TRY(auto certificate, crypto::Certificate::from_der(der));
    return check_domain_certificate(domain, certificate.pem(), key.pkcs8_pem(), CertificateSource::self_signed, now);
}

CertificateStore::CertificateStore() : map_(std::make_shared<Map>()) {}

std::shared_ptr<const CertificateStore::Map> CertificateStore::snapshot() const {
    std::lock_guard lock(mutex_);
    return map_;
}

std::shared_ptr<const DomainCertificate> CertificateStore::best(const Layers& layers) {
    for (const auto& layer : layers) {
        if (layer) return layer;
    }
    return nullptr;
}

void CertificateStore::put(DomainCertificate certificate) {
    std::lock_guard lock(mutex_);
    auto next = std::make_shared<Map>(*map_);
    auto slot = static_cast<std::size_t>(certificate.source);
    std::string domain = certificate.domain;
    (*next)[domain][slot] = std::make_shared<const DomainCertificate>(std::move(certificate));
    map_ = std::move(next);
}

void CertificateStore::remove(const std::string& domain, CertificateSource source) {
    std::lock_guard lock(mutex_);
    auto it = map_->find(domain);
    if (it == map_->end()) return;
    auto next = std::make_shared<Map>(*map_);
    auto& layers = (*next)[domain];
    layers[static_cast<std::size_t>(source)].reset();
    if (!best(layers)) next->erase(domain);
    map_ = std::move(next);
}

std::optional<net::tls::CertifiedKey> CertificateStore::for_server_name(std::string_view server_name) const {
    auto dot = server_name.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    auto map = snapshot();
    auto it = map->find(server_name.substr(dot + 1));
    if (it == map->end()) return std::nullopt;
    auto chosen = best(it->second);
    if (!chosen) return std::nullopt;
    return chosen->pem;
}

bool CertificateStore::covers(std::string_view parent_domain) const {
    auto map = snapshot();
    return map->find(parent_domain) != map->end();
}

std::vector<DomainCertificate> CertificateStore::served() const {
    std::vector<DomainCertificate> out;
    for (const auto& [domain, layers] : *snapshot()) {
        if (auto chosen = best(layers)) out.push_back(*chosen);
    }
    return out;
}

std::optional<DomainCertificate> CertificateStore::layer(const std::string& domain, CertificateSource source) const {
    auto map = snapshot();
    auto it = map->find(domain);
    if (it == map->end()) return std::nullopt;
    const auto& chosen = it->second[static_cast<std::size_t>(source)];
    if (!chosen) return std::nullopt;
    return *chosen;
}

}  // namespace dstack::applets::gateway
