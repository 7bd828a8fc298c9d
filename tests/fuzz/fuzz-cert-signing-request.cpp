// libFuzzer target: SignCert's CSR and signature come from any guest that reaches the KMS. The
// decoder must return a request or an error, never crash; what decodes must re-encode to the same
// bytes (one request, one encoding: the signature is over those bytes).
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "dstack/app/cert-signing-request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // First byte: the api version (1, 2, or another); second: how many of the last bytes are the signature.
    const std::uint32_t api_version = data[0] % 4;
    const std::size_t signature_size = std::min<std::size_t>(data[1], size - 2);
    dstack::ByteView rest(data + 2, size - 2);
    auto csr = rest.subspan(0, rest.size() - signature_size);
    auto signature = rest.subspan(rest.size() - signature_size);

    auto decoded = dstack::app::decode_cert_signing_request(api_version, csr);
    if (decoded) {
        if (dstack::app::encode_cert_signing_request(*decoded) != dstack::Bytes(csr.begin(), csr.end())) std::abort();
    } else if (decoded.error().message.empty()) {
        std::abort();
    }
    auto request = dstack::app::decode_sign_cert_request(api_version, csr, signature);
    // A request that passes carries its key and binds the evidence to it.
    if (request && (!decoded || request->evidence.certificate_spki != request->csr.pubkey)) std::abort();
    return 0;
}
