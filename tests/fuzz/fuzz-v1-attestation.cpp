// libFuzzer target: V1 (MessagePack) attestations must never crash or recurse, and an accepted one
// must re-encode to upstream's canonical bytes, which read back to the same canonical bytes (the
// reader takes serde's alternatives, such as any integer width or bin for an array, so the input
// itself need not be canonical). Any input is also stepped over with the generic skip.
#include <cstdlib>

#include "dstack/base/msgpack.hpp"
#include "dstack/tee/attestation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    dstack::ByteView bytes(data, size);
    if (auto evidence = dstack::tee::parse_v1_attestation(bytes)) {
        auto encoded = dstack::tee::encode_v1_attestation(*evidence);
        if (!encoded) std::abort();
        auto again = dstack::tee::parse_v1_attestation(*encoded);
        if (!again) std::abort();
        auto encoded_again = dstack::tee::encode_v1_attestation(*again);
        if (!encoded_again || *encoded_again != *encoded) std::abort();
        if (again->quote != evidence->quote || again->report_data != evidence->report_data ||
            again->vm_config != evidence->vm_config || again->event_log.size() != evidence->event_log.size())
            std::abort();
    }
    dstack::msgpack::Reader reader(bytes);
    (void)reader.skip("value");
    (void)dstack::tee::read_evidence(bytes);
    return 0;
}
