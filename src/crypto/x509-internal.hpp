// Internal to the crypto layer: mbedTLS plumbing shared by certificate and CSR code.
#pragma once

#ifndef MBEDTLS_ALLOW_PRIVATE_ACCESS
#define MBEDTLS_ALLOW_PRIVATE_ACCESS  // the writers' name lists have no public setter taking a list
#endif

#include <list>
#include <string>
#include <vector>

#include <mbedtls/asn1.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509.h>

#include "backend.hpp"

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::crypto::detail {

struct PkContext {
    mbedtls_pk_context pk;
    PkContext() { mbedtls_pk_init(&pk); }
    ~PkContext() { mbedtls_pk_free(&pk); }
    PkContext(const PkContext&) = delete;
    PkContext& operator=(const PkContext&) = delete;
};

// Wraps the key's PSA handle in an mbedTLS PK context (opaque) so the X.509 writers sign with it;
// the key must outlive the context.
Result<void> load_private_key(PkContext& context, const P256PrivateKey& key);
Result<void> load_public_key(PkContext& context, ByteView spki_der);

// Name lists in the writers' order (the last RDN first), allocated for mbedTLS to free.
Result<mbedtls_asn1_named_data*> build_name_list(const DistinguishedName& name);
Result<mbedtls_asn1_named_data*> copy_name_list(const mbedtls_x509_name* parsed);

// SAN list for the writers; owns its storage.
class SanList {
public:
    static Result<SanList> build(const std::vector<std::string>& names);
    const mbedtls_x509_san_list* get() const { return nodes_.empty() ? nullptr : &nodes_.back(); }

private:
    std::list<Bytes> storage_;
    std::vector<mbedtls_x509_san_list> nodes_;
};

std::vector<std::string> read_subject_alt_names(const mbedtls_x509_sequence* names);
DistinguishedName read_name(const mbedtls_x509_name* name);
std::string name_text(const mbedtls_x509_name* name);

// Writes with a growing buffer: `write(buffer, size)` returns a length written at the END of the
// buffer, or an mbedTLS error.
template <typename Write>
Result<Bytes> write_der(std::size_t first_size, Write write, std::string_view what) {
    for (std::size_t size = first_size; size <= 4 * 1024 * 1024; size *= 2) {
        Bytes buffer(size);
        int rc = write(buffer.data(), buffer.size());
        if (rc == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL) continue;
        if (rc < 0) return mbedtls_error(what, rc);
        return Bytes(buffer.end() - rc, buffer.end());
    }
    return make_error("{}: output exceeds 4 MiB", what);
}

}  // namespace dstack::crypto::detail
