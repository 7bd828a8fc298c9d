// libFuzzer target: quote and PCK-extension parsing must never crash; an accepted quote must
// re-encode to exactly the bytes it was read from (less trailing bytes), and an accepted PCK
// extension must survive its own encoding.
#include <cstdlib>
#include <cstring>

#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/quote.hpp"

using namespace dstack;
using namespace dstack::tee;

namespace {

void check_quote(ByteView input) {
    auto quote = parse_quote(input);
    if (!quote) return;
    auto encoded = encode_quote(quote->header, quote->body, quote->auth);
    if (encoded.size() + quote->trailing_bytes != input.size()) std::abort();
    if (std::memcmp(encoded.data(), input.data(), encoded.size()) != 0) std::abort();
    auto signed_region = encode_signed_region(quote->header, quote->body);
    if (signed_region.size() != quote->signed_length) std::abort();
    auto again = parse_quote(encoded);
    if (!again || again->trailing_bytes != 0 || again->auth.qe_report_bytes != quote->auth.qe_report_bytes) std::abort();
}

void check_pck_extension(ByteView input) {
    auto extension = parse_pck_extension_value(input);
    if (!extension) return;
    auto again = parse_pck_extension_value(encode_pck_extension_value(*extension, extension->cpu_svn));
    if (!again || again->fmspc != extension->fmspc || again->cpu_svn != extension->cpu_svn ||
        again->pce_svn != extension->pce_svn || again->ppid != extension->ppid ||
        again->platform_instance_id != extension->platform_instance_id) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ByteView input(data, size);
    check_quote(input);
    check_pck_extension(input);
    return 0;
}
