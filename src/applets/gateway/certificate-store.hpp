// The certificates the gateway terminates TLS with, by base domain: a certificate for
// `example.com` serves `*.example.com` (exactly one label more, spec/gateway.md §9.1). Each domain
// has up to three layers, the best one served: an ACME certificate, else the operator's static
// file, else our self-signed wildcard (§9.7), so a fresh deployment answers TLS at once and a real
// certificate replaces the self-signed one the moment it arrives. Readers take a snapshot without
// waiting for writers; a certificate that fails its checks never replaces a good one.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::applets::gateway {

enum class CertificateSource { acme = 0, static_file = 1, self_signed = 2 };
std::string_view source_name(CertificateSource source);

struct DomainCertificate {
    std::string domain;                 // the base domain, lowercase
    net::tls::CertifiedKey pem;         // chain (leaf first) and key; the key is secret
    CertificateSource source = CertificateSource::self_signed;
    UnixSeconds not_before = 0, not_after = 0;
    std::string issuer;                 // who signed the leaf (checked), as text
    bool self_signed = false;           // the leaf signs itself (read from the certificate, not the source)
    std::string serial_hex, sha256_hex; // of the leaf
    Bytes public_key_der;               // the leaf's SubjectPublicKeyInfo (AcmeInfo, zt-cert report data)
    std::string quote_json;             // GetQuote for SHA-512("zt-cert:" || SPKI), when attested
};

// Parses and checks a chain and key for `domain`: the leaf must cover *.domain, be valid at `now`
// and match the key, and each certificate's issuer must be the next one's subject (not a trust decision:
// that is the client's; a chain that does not hold together is refused). An ACME certificate
// must not be self-signed. Errors name the domain and what is wrong.
Result<DomainCertificate> check_domain_certificate(std::string domain, std::string chain_pem, std::string key_pem,
                                                   CertificateSource source, UnixSeconds now);

// A fresh P-256 key and a self-signed certificate for *.domain and domain, valid 90 days.
Result<DomainCertificate> make_self_signed_wildcard(std::string domain, UnixSeconds now);

// Lowercase, without a trailing dot or a leading "*."; errors for anything that is not a DNS name.
Result<std::string> normalize_domain(std::string_view domain);

class CertificateStore {
public:
    CertificateStore();

    // Installs (or replaces) the domain's layer for its source.
    void put(DomainCertificate certificate);
    void remove(const std::string& domain, CertificateSource source);

    // The certificate served for `server_name` ("app.example.com" ⇒ the best layer of example.com).
    std::optional<net::tls::CertifiedKey> for_server_name(std::string_view server_name) const;
    // Whether the parent domain of a server name has a certificate: the platform's label grammar
    // applies there (§3.4); any other name is a custom domain.
    bool covers(std::string_view parent_domain) const;
    // The best layer of each domain, and every layer, for Info, the dashboard and /metrics.
    std::vector<DomainCertificate> served() const;
    std::optional<DomainCertificate> layer(const std::string& domain, CertificateSource source) const;

private:
    using Layers = std::array<std::shared_ptr<const DomainCertificate>, 3>;
    using Map = std::map<std::string, Layers, std::less<>>;
    std::shared_ptr<const Map> snapshot() const;
    static std::shared_ptr<const DomainCertificate> best(const Layers& layers);

    mutable std::mutex mutex_;  // guards map_ (the pointer); the maps themselves are immutable
    std::shared_ptr<const Map> map_;
};

}  // namespace dstack::applets::gateway
