#include "dstack/crypto/hkdf.hpp"

#include "backend.hpp"
#include "dstack/crypto/hmac.hpp"

namespace dstack::crypto {
namespace {

constexpr std::size_t max_length = 255 * 32;

struct DerivationInput {
    psa_key_derivation_step_t step;
    ByteView bytes;
};

Result<Bytes> derive(psa_algorithm_t alg, std::initializer_list<DerivationInput> inputs, std::size_t length) {
    DSTACK_CHECK(detail::ensure_psa());
    psa_key_derivation_operation_t operation = PSA_KEY_DERIVATION_OPERATION_INIT;
    struct Abort {
        psa_key_derivation_operation_t* op;
        ~Abort() { psa_key_derivation_abort(op); }
    } abort_on_exit{&operation};

    psa_status_t status = psa_key_derivation_setup(&operation, alg);
    if (status != PSA_SUCCESS) return detail::psa_error("HKDF setup", status);
    for (const auto& input : inputs) {
        status = psa_key_derivation_input_bytes(&operation, input.step, input.bytes.data(), input.bytes.size());
        if (status != PSA_SUCCESS) return detail::psa_error("HKDF input", status);
    }
    Bytes out(length);
    status = psa_key_derivation_output_bytes(&operation, out.data(), out.size());
    if (status != PSA_SUCCESS) return detail::psa_error("HKDF output", status);
    return out;
}

}  // namespace

Result<Bytes> hkdf_sha256(ByteView salt, ByteView ikm, ByteView info, std::size_t length) {
    if (length > max_length) return make_error("HKDF-SHA256: {} bytes requested, at most {} possible", length, max_length);
    if (length == 0) return Bytes{};
    return derive(PSA_ALG_HKDF(PSA_ALG_SHA_256),
                  {{PSA_KEY_DERIVATION_INPUT_SALT, salt},
                   {PSA_KEY_DERIVATION_INPUT_SECRET, ikm},
                   {PSA_KEY_DERIVATION_INPUT_INFO, info}},
                  length);
}

Bytes hkdf_sha256_extract(ByteView salt, ByteView ikm) {
    // RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM); an absent salt is HashLen zeros, which HMAC treats
    // exactly like an empty key.
    return hmac_sha256(salt, ikm);
}

Result<Bytes> hkdf_sha256_expand(ByteView prk, ByteView info, std::size_t length) {
    if (length > max_length) return make_error("HKDF-SHA256: {} bytes requested, at most {} possible", length, max_length);
    if (prk.size() < 32) return make_error("HKDF-SHA256 expand: PRK of {} bytes is shorter than 32", prk.size());
    if (length == 0) return Bytes{};
    return derive(PSA_ALG_HKDF_EXPAND(PSA_ALG_SHA_256),
                  {{PSA_KEY_DERIVATION_INPUT_SECRET, prk}, {PSA_KEY_DERIVATION_INPUT_INFO, info}}, length);
}

}  // namespace dstack::crypto
