// libFuzzer target: the DER reader (SGX extension, CRL distribution points, basic constraints)
// must never crash, and what it accepts must encode back to the same bytes.
#include <cstdlib>

#include "dstack/crypto/asn1.hpp"

namespace {

// Walks every element, descending into constructed ones, at most `depth` levels.
void walk(dstack::ByteView input, int depth) {
    dstack::crypto::der::Reader reader(input);
    while (!reader.at_end()) {
        auto element = reader.read();
        if (!element) return;
        auto again = dstack::crypto::der::encode(element->tag, element->content);
        auto reread = dstack::crypto::der::read_single(again, element->tag);
        if (!reread || reread->size() != element->content.size()) std::abort();
        if (element->tag == dstack::crypto::der::tag::boolean) (void)dstack::crypto::der::read_boolean(element->content);
        if (element->tag == dstack::crypto::der::tag::integer) (void)dstack::crypto::der::read_unsigned(element->content);
        if ((element->tag & 0x20) != 0 && depth > 0) walk(element->content, depth - 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    walk(dstack::ByteView(data, size), 16);
    return 0;
}
