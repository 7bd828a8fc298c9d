// Reading the trust root the user points the verify applet at.
#include "dstack/base/file.hpp"
#include "dstack/crypto/pem.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {

Result<crypto::Certificate> read_trust_root(const std::string& path) {
    DSTACK_TRY(auto bytes, read_file(path, 64 * 1024));
    auto text = as_chars(bytes);
    auto root = text.find("-----BEGIN") != std::string_view::npos ? crypto::Certificate::from_pem(text)
                                                                   : crypto::Certificate::from_der(bytes);
    if (!root) return std::move(root).take_error().context(fmt::format("--trust-root {}", path));
    if (!root->is_ca()) return make_error("--trust-root {}: not a CA certificate", path);
    return root;
}

}  // namespace dstack::applets::verify
