#include "dstack/crypto/hash.hpp"

#include <cstdlib>

#include "backend.hpp"

namespace dstack::crypto {
namespace {

// Hashing fixed algorithms of in-memory data only fails on a broken build; stop loudly.
void require(psa_status_t status, const char* what) {
    if (status != PSA_SUCCESS) detail::fatal(detail::psa_error(what, status));
}

void require_psa() {
    if (auto ready = detail::ensure_psa(); !ready) detail::fatal(ready.error());
}

}  // namespace

std::size_t digest_size(HashAlgorithm algorithm) {
    return PSA_HASH_LENGTH(detail::psa_hash_algorithm(algorithm));
}

Bytes hash(HashAlgorithm algorithm, ByteView data) {
    require_psa();
    Bytes out(digest_size(algorithm));
    std::size_t length = 0;
    require(psa_hash_compute(detail::psa_hash_algorithm(algorithm), data.data(), data.size(), out.data(), out.size(), &length),
            "psa_hash_compute");
    return out;
}

Bytes sha256(ByteView data) { return hash(HashAlgorithm::sha256, data); }
Bytes sha384(ByteView data) { return hash(HashAlgorithm::sha384, data); }
Bytes sha512(ByteView data) { return hash(HashAlgorithm::sha512, data); }

namespace {

// SHA3 stays out of HashAlgorithm so that HMAC, HKDF and signatures keep accepting SHA-2 only.
Bytes psa_hash(psa_algorithm_t algorithm, ByteView data) {
    require_psa();
    Bytes out(PSA_HASH_LENGTH(algorithm));
    std::size_t length = 0;
    require(psa_hash_compute(algorithm, data.data(), data.size(), out.data(), out.size(), &length), "psa_hash_compute");
    return out;
}

}  // namespace

Bytes sha3_256(ByteView data) { return psa_hash(PSA_ALG_SHA3_256, data); }
Bytes sha3_384(ByteView data) { return psa_hash(PSA_ALG_SHA3_384, data); }
Bytes sha3_512(ByteView data) { return psa_hash(PSA_ALG_SHA3_512, data); }

struct Hasher::State {
    HashAlgorithm algorithm;
    psa_hash_operation_t operation = PSA_HASH_OPERATION_INIT;
    ~State() { psa_hash_abort(&operation); }
};

Hasher::Hasher(HashAlgorithm algorithm) : state_(std::make_unique<State>()) {
    require_psa();
    state_->algorithm = algorithm;
    require(psa_hash_setup(&state_->operation, detail::psa_hash_algorithm(algorithm)), "psa_hash_setup");
}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

Hasher& Hasher::update(ByteView data) {
    require(psa_hash_update(&state_->operation, data.data(), data.size()), "psa_hash_update");
    return *this;
}

Bytes Hasher::finish() {
    Bytes out(digest_size(state_->algorithm));
    std::size_t length = 0;
    require(psa_hash_finish(&state_->operation, out.data(), out.size(), &length), "psa_hash_finish");
    return out;
}

}  // namespace dstack::crypto
