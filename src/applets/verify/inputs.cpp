// Reading what the user points the verify applet at: input files, times, trust roots, collateral.
#include <unistd.h>

#include <cstdlib>

#include "dstack/base/file.hpp"
#include "dstack/crypto/pem.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {

Result<Bytes> read_input(const std::string& path, std::size_t max_size) {
    if (path != "-") return read_file(path, max_size);
    Bytes data;
    std::uint8_t buffer[65536];
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
        if (n < 0) return make_error("standard input: {}", std::strerror(errno));
        if (n == 0) break;
        if (data.size() + static_cast<std::size_t>(n) > max_size) return make_error("standard input: more than {} bytes", max_size);
        data.insert(data.end(), buffer, buffer + n);
    }
    return data;
}

Result<UnixSeconds> parse_time(std::string_view text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos && text.size() <= 12)
        return static_cast<UnixSeconds>(std::stoll(std::string(text)));
    auto parsed = parse_rfc3339(text);
    if (!parsed) return make_error("--now: '{}' is neither Unix seconds nor an RFC 3339 time", text);
    return parsed;
}

Result<crypto::Certificate> read_trust_root(const std::string& path) {
    DSTACK_TRY(auto bytes, read_file(path, 64 * 1024));
    auto text = as_chars(bytes);
    auto root = text.find("-----BEGIN") != std::string_view::npos ? crypto::Certificate::from_pem(text)
                                                                   : crypto::Certificate::from_der(bytes);
    if (!root) return std::move(root).take_error().context(fmt::format("--trust-root {}", path));
    if (!root->is_ca()) return make_error("--trust-root {}: not a CA certificate", path);
    return root;
}

std::string CollateralSource::effective_pccs_url() const {
    if (pccs_url) return *pccs_url;
    if (const char* env = std::getenv("PCCS_URL"); env && *env) return env;
    return "https://pccs.phala.network";
}

Result<tee::Collateral> obtain_collateral(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                          const std::optional<crypto::Certificate>& trust_anchor) {
    if (source.file) {
        DSTACK_TRY(auto text, read_text_file(*source.file, tee::max_collateral_size));
        auto collateral = tee::parse_collateral_json(text);
        if (!collateral) return std::move(collateral).take_error().context(fmt::format("--collateral {}", *source.file));
        return collateral;
    }
    return fetch_collateral_now(source, quote, now, trust_anchor);
}

}  // namespace dstack::applets::verify
