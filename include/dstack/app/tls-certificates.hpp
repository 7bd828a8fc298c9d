// The X.509 certificates a dstack guest hands out (spec/agent.md §2.1, §3, §6.4, §7.2): GetTlsKey
// and Tappd DeriveKey leaves, the Info demo certificate and the RA-TLS client certificate, all
// issued by the app's CA; and the app CA itself, which dstack-util makes from a seed when no KMS
// provides the app keys. The profile follows upstream's ra-tls CertRequest (rcgen 0.13) so that
// upstream SDKs and verifiers read our certificates as they read theirs.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/app/boot-files.hpp"
#include "dstack/app/report-data.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::app {

// The special-usage extension (1.3.6.1.4.1.62397.1.4) of GetTlsKey, DeriveKey and demo certificates.
inline constexpr std::string_view app_custom_usage = "app:custom";
// rcgen's default notBefore, 1975-01-01T00:00:00Z, which upstream keeps unless asked otherwise.
inline constexpr UnixSeconds default_not_before = 157766400;
// Upstream's default lifetime: notAfter = now + 3650 days.
inline constexpr UnixSeconds default_lifetime = 3650LL * 86400;

// Limits on what a caller (an app, over the agent's socket) may put in a certificate. Together
// they keep the certificate's PEM under crypto::max_encoded_size, which our own readers refuse
// beyond: a certificate nobody can read back must not be issued.
inline constexpr std::size_t max_certificate_subject_size = 1024;
inline constexpr std::size_t max_certificate_alt_names = 64;
inline constexpr std::size_t max_certificate_alt_name_size = 253;  // a DNS name's longest text form
inline constexpr std::size_t max_certificate_extensions_size = 40 * 1024;  // custom payloads together

// What upstream's CertRequest holds (minus the key, passed on its own).
struct TlsCertRequest {
    TlsCertRequest() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)

    std::optional<std::string> organization;  // O=, before CN; the agent never sets it (KMS CSRs may)
    std::string subject;                      // CN=; may be empty (the JS SDK's default)
    // Each entry is an iPAddress SAN if it parses as an IPv4/IPv6 literal, else a dNSName
    // (printable ASCII only: rcgen refuses other names, and a NUL would split one).
    std::vector<std::string> alt_names;
    bool usage_server_auth = false;  // ExtendedKeyUsage serverAuth
    bool usage_client_auth = false;  // ExtendedKeyUsage clientAuth (the extension is absent when neither)
    // Custom extensions, written in upstream's order: app id, app info, special usage, attestation,
    // then the legacy quote and event log.
    std::optional<Bytes> app_id;       // 1.3: 20 bytes; only KMS-issued certificates carry it
    std::optional<Bytes> app_info;     // 1.9: MessagePack AppInfo (GetTlsKey with_app_info)
    std::optional<std::string> special_usage = std::string(app_custom_usage);  // 1.4; nullopt: none
    // 1.8: versioned attestation bytes, already stripped as upstream strips them (into_stripped),
    // made for report_data = ratls_report_data(leaf SPKI) (GetTlsKey usage_ra_tls, demo cert).
    std::optional<Bytes> attestation;
    // 1.1 raw TDX quote and 1.2 event-log JSON: upstream stopped writing them (a11ddbf5), but
    // verifiers older than that (Go sdk/go/ratls) read only these.
    std::optional<Bytes> legacy_quote;
    std::optional<std::string> legacy_event_log;
    std::optional<UnixSeconds> not_before;  // default default_not_before
    std::optional<UnixSeconds> not_after;   // default now + default_lifetime
};

// The leaf certificate PEM for `leaf_key`, signed by `ca_key`, whose certificate is `ca_cert`
// (issuer name copied from its subject byte for byte). KeyUsage digitalSignature (critical);
// SubjectKeyIdentifier = SHA-256(SPKI)[0..20] and no AuthorityKeyIdentifier, serial =
// SHA-256(04||X||Y)[0..20] with the top bit cleared, as rcgen writes them. Errors: both validity
// bounds given and not_before >= not_after ("not_before must be earlier than not_after"), inputs
// over the limits above, a CA key that is not the CA certificate's.
Result<std::string> issue_tls_certificate(const TlsCertRequest& request, const crypto::P256PrivateKey& leaf_key,
                                          const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca_cert,
                                          UnixSeconds now);
// The same for a key known only by its 65-byte P-256 point (a KMS signing a guest's CSR).
Result<std::string> issue_tls_certificate(const TlsCertRequest& request, ByteView leaf_public_key,
                                          const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca_cert,
                                          UnixSeconds now);

// rcgen 0.13's default serial for a subject key: SHA-256(04||X||Y)[0..20], top bit cleared.
Bytes rcgen_serial(ByteView public_key);
// A certificate's PEM, refused when over crypto::max_encoded_size (our readers would refuse it).
Result<std::string> readable_pem(Bytes der);

// The report_data an RA-TLS certificate's attestation (extension 1.8) commits to:
// SHA-512("ratls-cert:" || DER SubjectPublicKeyInfo), upstream's QuoteContentType::RaTlsCert.
ReportData ratls_report_data(ByteView spki_der);

// Produces the stripped versioned attestation bytes for a report_data (the app CA's extension 1.8).
using AttestFunction = std::function<Result<Bytes>(const ReportData& report_data)>;

// dstack-util's gen_app_keys_from_seed, for key providers other than the KMS: the CA key is the
// P-256 key HKDF(seed, "app-key"), the disk key HKDF(seed, "app-disk-key") with disk_crypt_key =
// SHA-256 of its PKCS#8 DER, k256_key = HKDF(seed, "app-k256-key"), k256_signature and
// env_crypt_key and gateway_app_id empty; ca_cert is a self-signed "App Root Cert" (CA, pathLen 1,
// KeyUsage digitalSignature keyCertSign cRLSign) carrying, when `attest` is given, an attestation
// for ratls_report_data(CA SPKI). The key provider holds the CA key's PEM, and for `local` also
// `local_mr`, for `tpm` the CA key's SPKI (as upstream). `kms` is an error: KMS keys come from a KMS.
// The seed (1 to 1024 bytes) is secret; everything returned but ca_cert is secret too.
Result<AppKeys> generate_app_keys_from_seed(ByteView seed, KeyProvider::Kind provider, ByteView local_mr,
                                            const AttestFunction& attest, UnixSeconds now);

}  // namespace dstack::app
