// Writing X.509 v3 certificates signed with P-256 ECDSA-SHA256: dstack's CA, RPC, RA-TLS and
// app certificates.
#pragma once

#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::crypto {

struct CertificateSpec {
    DistinguishedName subject;                 // may be empty for CA-issued certificates
    Bytes serial;                              // big-endian, at most 20 bytes; empty: 16 random bytes
    UnixSeconds not_before = 0;
    UnixSeconds not_after = 0;
    // Each entry becomes an iPAddress if it parses as an IPv4/IPv6 literal, else a dNSName.
    std::vector<std::string> subject_alt_names;
    unsigned key_usage = key_usage::digital_signature;  // always critical; 0 leaves it out
    bool is_ca = false;                        // adds a critical BasicConstraints CA:TRUE
    int path_length = -1;                      // for CAs; -1: no limit
    bool server_auth = false;                  // ExtendedKeyUsage (absent when neither)
    bool client_auth = false;
    std::vector<X509Extension> extensions;     // written after the standard ones, in order
    bool subject_key_identifier = true;        // SHA-256(SPKI)[0..20], as upstream (rcgen) writes it
    // From the issuer's SubjectKeyIdentifier, when it has one (write_certificate only). rcgen
    // leaves it out by default, so certificates that mimic upstream's turn it off.
    bool authority_key_identifier = true;
};

// Self-signed: subject and issuer are spec.subject, signed by `key`. The subject may not be empty
// here (it is the issuer name too); an empty CN string is fine.
Result<Bytes> write_self_signed_certificate(const CertificateSpec& spec, const P256PrivateKey& key);

// Signed by a CA: the issuer name is copied from the CA certificate's subject byte for byte,
// and AuthorityKeyIdentifier from its SubjectKeyIdentifier when it has one. `issuer_key` must be
// the CA certificate's key. `subject_spki_der` is the subject's SubjectPublicKeyInfo.
Result<Bytes> write_certificate(const CertificateSpec& spec, ByteView subject_spki_der,
                                const P256PrivateKey& issuer_key, const Certificate& issuer);

}  // namespace dstack::crypto
