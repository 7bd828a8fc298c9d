// libFuzzer target: V0 attestations and evidence sniffing must never crash, and an accepted V0
// attestation must encode back to exactly the bytes it came from (one encoding per value).
#include <algorithm>
#include <cstdlib>

#include "dstack/tee/attestation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    dstack::ByteView bytes(data, size);
    if (auto evidence = dstack::tee::parse_v0_attestation(bytes)) {
        auto encoded = dstack::tee::encode_v0_attestation(*evidence);
        if (encoded.size() != size || !std::equal(encoded.begin(), encoded.end(), bytes.begin())) std::abort();
    }
    (void)dstack::tee::read_evidence(bytes);
    return 0;
}
