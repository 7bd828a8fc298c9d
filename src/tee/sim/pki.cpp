// The simulator's PKI, shaped like Intel's: Root CA -> PCK Platform CA -> PCK certificate (with the
// SGX extension), Root CA -> TCB Signing certificate, and a CRL from each CA. Persisted as PEM
// certificates, PKCS#8 keys (0600) and DER CRLs so that a simulated platform keeps its identity.
#include <system_error>

#include "dstack/base/file.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/tee/sim.hpp"

namespace dstack::tee::sim {
namespace {

constexpr UnixSeconds one_day = 86400;
constexpr UnixSeconds ten_years = 3650 * one_day;
constexpr std::size_t max_pki_file_size = 64 * 1024;

crypto::CertificateSpec spec_for(std::string common_name, UnixSeconds not_before, UnixSeconds not_after) {
    crypto::CertificateSpec spec;
    spec.subject.common_name = std::move(common_name);
    spec.not_before = not_before;
    spec.not_after = not_after;
    return spec;
}

crypto::CertificateSpec ca_spec(std::string common_name, int path_length, UnixSeconds not_before, UnixSeconds not_after) {
    auto spec = spec_for(std::move(common_name), not_before, not_after);
    spec.is_ca = true;
    spec.path_length = path_length;
    spec.key_usage = crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    return spec;
}

Result<crypto::Certificate> parsed(Result<Bytes> der, std::string_view what) {
    if (!der) return der.error().context(fmt::format("issuing the simulated {}", what));
    return crypto::Certificate::from_der(*der);
}

Result<void> write_text(const std::filesystem::path& path, std::string_view text, unsigned mode) {
    auto written = write_file_atomic(path, as_bytes(text), mode);
    if (!written) return written.error().context(fmt::format("writing {}", path.string()));
    return {};
}

Result<std::string> read_text(const std::filesystem::path& path) {
    auto text = read_text_file(path, max_pki_file_size);
    if (!text) return text.error().context(fmt::format("reading the simulated PKI file {}", path.string()));
    return text;
}

Result<crypto::Certificate> load_certificate(const std::filesystem::path& path) {
    DSTACK_TRY(auto pem, read_text(path));
    auto certificate = crypto::Certificate::from_pem(pem);
    if (!certificate) return certificate.error().context(fmt::format("parsing {}", path.string()));
    return certificate;
}

// The key must be the certificate's: a mismatched pair would sign things nothing verifies.
Result<crypto::P256PrivateKey> load_key_for(const std::filesystem::path& path, const crypto::Certificate& certificate) {
    DSTACK_TRY(auto pem, read_text(path));
    auto key = crypto::P256PrivateKey::from_pem(pem);
    wipe({reinterpret_cast<std::uint8_t*>(pem.data()), pem.size()});
    if (!key) return key.error().context(fmt::format("parsing {}", path.string()));
    if (key->spki_der() != certificate.spki_der())
        return make_error("{} does not hold the key of the certificate {}", path.string(), certificate.subject_text());
    return key;
}

Result<Bytes> load_crl(const std::filesystem::path& path) {
    auto der = read_file(path, max_pki_file_size);
    if (!der) return der.error().context(fmt::format("reading the simulated PKI file {}", path.string()));
    return der;
}

}  // namespace

PckExtension default_pck_extension() {
    PckExtension pck;
    pck.ppid = {0xd5, 0x7a, 0xc4, 0x00, 0x51, 0x3e, 0x9b, 0x2f, 0x60, 0x18, 0xa7, 0x44, 0x0c, 0xe2, 0x93, 0x71};
    pck.cpu_svn = {0x04, 0x04, 0x02, 0x02, 0x03, 0x01, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 0};
    pck.pce_svn = 13;
    pck.pce_id = {0x00, 0x00};
    pck.fmspc = {0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00};
    pck.sgx_type = 1;
    return pck;
}

Result<crypto::Certificate> issue_root_ca(const crypto::P256PrivateKey& key, UnixSeconds not_before, UnixSeconds not_after) {
    auto spec = ca_spec("Dstack Simulated SGX Root CA", 1, not_before, not_after);
    return parsed(crypto::write_self_signed_certificate(spec, key), "root CA");
}

Result<crypto::Certificate> issue_platform_ca(const crypto::P256PrivateKey& key, const crypto::P256PrivateKey& root_key,
                                              const crypto::Certificate& root, UnixSeconds not_before,
                                              UnixSeconds not_after) {
    auto spec = ca_spec("Dstack Simulated PCK Platform CA", 0, not_before, not_after);
    return parsed(crypto::write_certificate(spec, key.spki_der(), root_key, root), "PCK platform CA");
}

Result<crypto::Certificate> issue_pck_certificate(const crypto::P256PrivateKey& key, const PckExtension& pck,
                                                  const Fixed<16>& tcb_components,
                                                  const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca,
                                                  UnixSeconds not_before, UnixSeconds not_after) {
    auto spec = spec_for("Dstack Simulated PCK Certificate", not_before, not_after);
    spec.extensions.push_back({std::string(sgx_extension_oid), encode_pck_extension_value(pck, tcb_components), false});
    return parsed(crypto::write_certificate(spec, key.spki_der(), ca_key, ca), "PCK certificate");
}

Result<crypto::Certificate> issue_tcb_signing_certificate(const crypto::P256PrivateKey& key,
                                                          const crypto::P256PrivateKey& root_key,
                                                          const crypto::Certificate& root, UnixSeconds not_before,
                                                          UnixSeconds not_after) {
    auto spec = spec_for("Dstack Simulated SGX TCB Signing", not_before, not_after);
    return parsed(crypto::write_certificate(spec, key.spki_der(), root_key, root), "TCB signing certificate");
}

Result<SimPki> generate_pki(const SimPkiOptions& options) {
    UnixSeconds not_before = options.not_before != 0 ? options.not_before : system_now() - one_day;
    UnixSeconds not_after = options.not_after != 0 ? options.not_after : not_before + ten_years;
    if (not_after <= not_before) return make_error("simulated PKI: not_after must be after not_before");

    DSTACK_TRY(auto root_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto platform_ca_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto pck_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto tcb_signing_key, crypto::P256PrivateKey::generate());

    DSTACK_TRY(auto root, issue_root_ca(root_key, not_before, not_after));
    DSTACK_TRY(auto platform_ca, issue_platform_ca(platform_ca_key, root_key, root, not_before, not_after));
    DSTACK_TRY(auto pck, issue_pck_certificate(pck_key, options.pck, options.tcb_components, platform_ca_key,
                                               platform_ca, not_before, not_after));
    DSTACK_TRY(auto tcb_signing, issue_tcb_signing_certificate(tcb_signing_key, root_key, root, not_before, not_after));

    DSTACK_TRY(auto root_ca_crl, write_crl(root_key, root, options.revoked_ca_serials, not_before, not_after));
    DSTACK_TRY(auto pck_crl, write_crl(platform_ca_key, platform_ca, options.revoked_pck_serials, not_before, not_after));
    return SimPki{root_key, platform_ca_key, pck_key, tcb_signing_key, root, platform_ca, pck, tcb_signing,
                  std::move(root_ca_crl), std::move(pck_crl)};
}

std::string SimPki::pck_chain_pem() const { return pck.pem() + platform_ca.pem() + root.pem(); }

std::string SimPki::tcb_signing_chain_pem() const { return tcb_signing.pem() + root.pem(); }

Result<void> SimPki::save(const std::filesystem::path& dir) const {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return make_error("creating the simulated PKI directory {}: {}", dir.string(), error.message());

    struct Pair {
        std::string_view stem;
        const crypto::Certificate& certificate;
        const crypto::P256PrivateKey& key;
    };
    const Pair pairs[] = {{"root", root, root_key},
                          {"platform-ca", platform_ca, platform_ca_key},
                          {"pck", pck, pck_key},
                          {"tcb-signing", tcb_signing, tcb_signing_key}};
    for (const auto& pair : pairs) {
        DSTACK_CHECK(write_text(dir / fmt::format("{}.pem", pair.stem), pair.certificate.pem(), 0644));
        std::string key_pem = pair.key.pkcs8_pem();
        auto written = write_text(dir / fmt::format("{}.key", pair.stem), key_pem, 0600);
        wipe({reinterpret_cast<std::uint8_t*>(key_pem.data()), key_pem.size()});
        DSTACK_CHECK(std::move(written));
    }
    DSTACK_CHECK(write_text(dir / "root-ca.crl.der", as_chars(root_ca_crl), 0644));
    DSTACK_CHECK(write_text(dir / "pck.crl.der", as_chars(pck_crl), 0644));
    return {};
}

Result<SimPki> SimPki::load(const std::filesystem::path& dir) {
    DSTACK_TRY(auto root, load_certificate(dir / "root.pem"));
    DSTACK_TRY(auto platform_ca, load_certificate(dir / "platform-ca.pem"));
    DSTACK_TRY(auto pck, load_certificate(dir / "pck.pem"));
    DSTACK_TRY(auto tcb_signing, load_certificate(dir / "tcb-signing.pem"));
    DSTACK_TRY(auto root_key, load_key_for(dir / "root.key", root));
    DSTACK_TRY(auto platform_ca_key, load_key_for(dir / "platform-ca.key", platform_ca));
    DSTACK_TRY(auto pck_key, load_key_for(dir / "pck.key", pck));
    DSTACK_TRY(auto tcb_signing_key, load_key_for(dir / "tcb-signing.key", tcb_signing));
    DSTACK_TRY(auto root_ca_crl, load_crl(dir / "root-ca.crl.der"));
    DSTACK_TRY(auto pck_crl, load_crl(dir / "pck.crl.der"));
    // Quotes and collateral are built from the PCK certificate's extension: refuse one without.
    if (auto extension = parse_pck_extension(pck); !extension)
        return extension.error().context(fmt::format("{}", (dir / "pck.pem").string()));
    return SimPki{root_key, platform_ca_key, pck_key, tcb_signing_key, root, platform_ca, pck, tcb_signing,
                  std::move(root_ca_crl), std::move(pck_crl)};
}

}  // namespace dstack::tee::sim
