#include "dstack/net/ca-bundle.hpp"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "dstack/base/file.hpp"
#include "dstack/crypto/certificate.hpp"

namespace dstack::net {
namespace {

Result<std::string> load_system_ca_bundle() {
    std::vector<std::string> candidates;
    if (const char* file = std::getenv("SSL_CERT_FILE"); file != nullptr && *file != '\0') candidates.emplace_back(file);
    for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                             "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem",
                             "/etc/ssl/cert.pem"})
        candidates.emplace_back(path);
    for (const auto& path : candidates) {
        std::error_code error;
        if (!std::filesystem::exists(path, error)) continue;
        auto bundle = read_text_file(path, max_ca_bundle_size);
        if (!bundle) return std::move(bundle).take_error().context("system CA bundle");
        std::string usable = usable_certificates(*bundle);
        if (usable.empty()) return make_error("system CA bundle {} holds no usable certificate", path);
        return usable;
    }
    return make_error("no system CA bundle found (set SSL_CERT_FILE, or pass the server's trust anchors)");
}

}  // namespace

std::string usable_certificates(std::string_view bundle) {
    constexpr std::string_view begin_marker = "-----BEGIN CERTIFICATE-----";
    constexpr std::string_view end_marker = "-----END CERTIFICATE-----";
    std::string usable;
    std::size_t position = 0;
    while ((position = bundle.find(begin_marker, position)) != std::string_view::npos) {
        std::size_t end = bundle.find(end_marker, position);
        if (end == std::string_view::npos) break;
        end += end_marker.size();
        std::string_view block = bundle.substr(position, end - position);
        if (crypto::Certificate::from_pem(block)) {
            usable.append(block);
            usable.push_back('\n');
        }
        position = end;
    }
    return usable;
}

const Result<std::string>& system_ca_bundle() {
    static const Result<std::string> bundle = load_system_ca_bundle();
    return bundle;
}

}  // namespace dstack::net
