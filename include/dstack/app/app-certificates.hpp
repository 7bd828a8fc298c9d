// The certificates the KMS issues to apps (spec/kms.md §2.7, §3.3): each app's CA, derived from
// the KMS root CA key and regenerated on every SignCert, and the leaf it signs from a guest's CSR.
// The KMS returns [leaf PEM, app CA PEM, root CA PEM].
#pragma once

#include <string>
#include <string_view>

#include "dstack/app/cert-signing-request.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::app {

// The special usage (extension 1.4) of a KMS-issued app CA.
inline constexpr std::string_view app_ca_usage = "app:ca";
inline constexpr std::size_t app_id_size = 20;

// derive_p256(root CA key, [app_id, "app-ca"]); app_id must be 20 bytes.
Result<crypto::P256PrivateKey> derive_app_ca_key(const crypto::P256PrivateKey& root_ca_key, ByteView app_id);

// The app CA certificate PEM for `app_ca_key`: O=Dstack, CN=Dstack App CA; CA with pathLen 0;
// KeyUsage digitalSignature keyCertSign cRLSign (critical); extensions 1.3 = app_id, 1.4 =
// "app:ca"; issuer = the root CA certificate's subject, signed by its key; notBefore rcgen's
// default (1975), notAfter now + 3650 days; serial and SubjectKeyIdentifier as rcgen writes them,
// no AuthorityKeyIdentifier. Errors: app_id not 20 bytes, a root key that is not the root certificate's.
Result<std::string> issue_app_ca_certificate(ByteView app_id, const crypto::P256PrivateKey& app_ca_key,
                                             const crypto::P256PrivateKey& root_ca_key,
                                             const crypto::Certificate& root_ca_cert, UnixSeconds now);

// The leaf certificate PEM for a verified SignCert request: O=org_name (if set), CN=subject, the
// SANs, KeyUsage digitalSignature, EKU per the usage flags, extensions 1.3 = app_id, 1.9 =
// app_info (MessagePack AppInfo) iff config.ext_app_info, 1.4 = "app:custom", 1.8 = the CSR's
// attestation stripped iff config.ext_quote; validity from the config, else notBefore 1975 and
// notAfter now + 3650 days. Signed by the app CA. Errors: app_id not 20 bytes, ext_app_info with
// empty app_info, bounds outside the years 1950-9999 or not_before >= not_after, what issue_tls_certificate refuses.
Result<std::string> issue_app_certificate(const SignCertRequest& request, ByteView app_id, ByteView app_info,
                                          const crypto::P256PrivateKey& app_ca_key,
                                          const crypto::Certificate& app_ca_cert, UnixSeconds now);

}  // namespace dstack::app
