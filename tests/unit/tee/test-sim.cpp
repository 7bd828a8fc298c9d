#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/pki.hpp"
#include "dstack/tee/sim.hpp"
#include "dstack/tee/tcb-info.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::crypto::test::have_openssl;
using dstack::crypto::test::run_command;

namespace {

constexpr UnixSeconds pki_not_before = 1735689600;  // 2025-01-01T00:00:00Z
constexpr UnixSeconds one_day = 86400;
constexpr UnixSeconds now = pki_not_before + one_day;

const sim::SimPki& pki() {
    static const sim::SimPki generated = [] {
        sim::SimPkiOptions options;
        options.not_before = pki_not_before;
        auto pki = sim::generate_pki(options);
        REQUIRE_MESSAGE(pki.ok(), (pki.ok() ? "" : pki.error().message));
        return *pki;
    }();
    return generated;
}

struct TempDir {
    std::filesystem::path path;
    TempDir() : path(std::filesystem::temp_directory_path() / ("dstack-sim-test-" + hex_encode(crypto::random_bytes(8)))) {
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string write(const std::string& name, ByteView bytes) const {
        auto file = path / name;
        REQUIRE(write_file_atomic(file, bytes, 0600).ok());
        return file.string();
    }
};

std::vector<Crl> crls_of(const sim::SimPki& p) {
    auto root_crl = Crl::from_der(p.root_ca_crl);
    auto pck_crl = Crl::from_der(p.pck_crl);
    REQUIRE(root_crl.ok());
    REQUIRE(pck_crl.ok());
    return {*root_crl, *pck_crl};
}

template <std::size_t N>
Fixed<N> filled(std::uint8_t value) {
    Fixed<N> out;
    out.fill(value);
    return out;
}

}  // namespace

TEST_CASE("sim PKI is shaped like Intel's and verifies at its own root") {
    const auto& p = pki();
    CHECK(p.root.common_name() == "Dstack Simulated SGX Root CA");
    CHECK(p.platform_ca.common_name() == "Dstack Simulated PCK Platform CA");
    CHECK(p.root.is_ca());
    CHECK(p.platform_ca.is_ca());
    CHECK_FALSE(p.pck.is_ca());
    CHECK_FALSE(p.tcb_signing.is_ca());
    CHECK(p.root.issuer_der() == p.root.subject_der());
    CHECK(p.platform_ca.issuer_der() == p.root.subject_der());
    CHECK(p.pck.issuer_der() == p.platform_ca.subject_der());
    CHECK(p.tcb_signing.issuer_der() == p.root.subject_der());
    CHECK(p.platform_ca.verify_signature_by(p.root).ok());
    CHECK(p.pck.verify_signature_by(p.platform_ca).ok());
    CHECK(p.tcb_signing.verify_signature_by(p.root).ok());
    CHECK(p.root.not_before() == pki_not_before);
    CHECK(p.root.not_after() == pki_not_before + 3650 * one_day);
    CHECK(p.pck.spki_der() == p.pck_key.spki_der());
    CHECK(p.root.spki_der() == p.root_key.spki_der());
    CHECK(pck_ca_kind(p.pck) == "platform");

    auto extension = parse_pck_extension(p.pck);
    REQUIRE_MESSAGE(extension.ok(), (extension.ok() ? "" : extension.error().message));
    auto expected = sim::default_pck_extension();
    CHECK(hex_encode(extension->fmspc) == "00906ed50000");
    CHECK(extension->cpu_svn == expected.cpu_svn);
    CHECK(extension->pce_svn == 13);
    CHECK(extension->ppid == expected.ppid);
    CHECK(extension->sgx_type == 1);

    auto crls = crls_of(p);
    CHECK(crls[0].issuer_der() == p.root.subject_der());
    CHECK(crls[1].issuer_der() == p.platform_ca.subject_der());
    CHECK(crls[0].verify_issued_by(p.root).ok());
    CHECK(crls[1].verify_issued_by(p.platform_ca).ok());

    auto pck_chain = crypto::Certificate::chain_from_pem(p.pck_chain_pem());
    REQUIRE(pck_chain.ok());
    REQUIRE(pck_chain->size() == 3);
    auto verified = verify_chain_at(*pck_chain, p.root, crls, now);
    CHECK_MESSAGE(verified.ok(), (verified.ok() ? "" : verified.error().message));
    auto tcb_chain = crypto::Certificate::chain_from_pem(p.tcb_signing_chain_pem());
    REQUIRE(tcb_chain.ok());
    REQUIRE(tcb_chain->size() == 2);
    CHECK(verify_chain_at(*tcb_chain, p.root, crls, now).ok());
    // Nothing of it chains to Intel.
    CHECK_FALSE(verify_chain_at(*pck_chain, intel_sgx_root_ca(), crls, now).ok());
}

TEST_CASE("sim PKI options: platform values and revocations") {
    sim::SimPkiOptions options;
    options.not_before = pki_not_before;
    options.not_after = pki_not_before + 100 * one_day;
    options.pck.fmspc = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    options.pck.pce_svn = 7;
    options.revoked_pck_serials = {{0x01, 0x02, 0x03}};
    options.revoked_ca_serials = {{0x7f, 0xff}};
    auto generated = sim::generate_pki(options);
    REQUIRE(generated.ok());
    CHECK(generated->pck.not_after() == pki_not_before + 100 * one_day);
    auto extension = parse_pck_extension(generated->pck);
    REQUIRE(extension.ok());
    CHECK(hex_encode(extension->fmspc) == "112233445566");
    CHECK(extension->pce_svn == 7);
    auto crls = crls_of(*generated);
    CHECK(crls[1].lists_serial(Bytes{0x01, 0x02, 0x03}));
    CHECK(crls[0].lists_serial(Bytes{0x7f, 0xff}));
    CHECK_FALSE(crls[0].lists_serial(Bytes{0x01, 0x02, 0x03}));
    CHECK(crls[1].next_update() == pki_not_before + 100 * one_day);

    options.not_after = options.not_before;
    CHECK_FALSE(sim::generate_pki(options).ok());
}

TEST_CASE("sim PKI save and load round trip") {
    TempDir dir;
    auto target = dir.path / "pki";
    auto saved = pki().save(target);
    REQUIRE_MESSAGE(saved.ok(), (saved.ok() ? "" : saved.error().message));
    for (const char* name : {"root.pem", "platform-ca.pem", "pck.pem", "tcb-signing.pem", "root.key", "platform-ca.key",
                             "pck.key", "tcb-signing.key", "root-ca.crl.der", "pck.crl.der"})
        CHECK_MESSAGE(std::filesystem::exists(target / name), name);
    for (const char* key : {"root.key", "platform-ca.key", "pck.key", "tcb-signing.key"}) {
        struct stat st {};
        REQUIRE(::stat((target / key).c_str(), &st) == 0);
        CHECK_MESSAGE((st.st_mode & 07777) == 0600, key);
    }
    auto key_text = read_text_file(target / "pck.key", 4096);
    REQUIRE(key_text.ok());
    CHECK(key_text->find("-----BEGIN PRIVATE KEY-----") == 0);

    auto loaded = sim::SimPki::load(target);
    REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? "" : loaded.error().message));
    CHECK(loaded->root.der() == pki().root.der());
    CHECK(loaded->platform_ca.der() == pki().platform_ca.der());
    CHECK(loaded->pck.der() == pki().pck.der());
    CHECK(loaded->tcb_signing.der() == pki().tcb_signing.der());
    CHECK(loaded->root_key.scalar() == pki().root_key.scalar());
    CHECK(loaded->platform_ca_key.scalar() == pki().platform_ca_key.scalar());
    CHECK(loaded->pck_key.scalar() == pki().pck_key.scalar());
    CHECK(loaded->tcb_signing_key.scalar() == pki().tcb_signing_key.scalar());
    CHECK(loaded->root_ca_crl == pki().root_ca_crl);
    CHECK(loaded->pck_crl == pki().pck_crl);

    // A key that is not the certificate's is refused, and so is a missing file.
    std::filesystem::copy_file(target / "pck.key", target / "root.key", std::filesystem::copy_options::overwrite_existing);
    auto mismatched = sim::SimPki::load(target);
    REQUIRE_FALSE(mismatched.ok());
    CHECK(mismatched.error().message.find("root.key does not hold the key") != std::string::npos);
    auto missing = sim::SimPki::load(dir.path / "nowhere");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("root.pem") != std::string::npos);
}

TEST_CASE("sim CRL writer: DER that the crypto layer and the openssl CLI read") {
    const auto& p = pki();
    std::vector<Bytes> serials = {p.pck.serial(), Bytes{0x00, 0x80}, Bytes{0x2a}};
    UnixSeconds this_update = pki_not_before;
    UnixSeconds next_update = 2524608000 + 3600;  // 2050-01-01T01:00:00Z: GeneralizedTime
    auto der = sim::write_crl(p.platform_ca_key, p.platform_ca, serials, this_update, next_update);
    REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));

    auto crl = Crl::from_der(*der);
    REQUIRE(crl.ok());
    CHECK(crl->version() == 2);
    CHECK(crl->issuer_der() == p.platform_ca.subject_der());
    CHECK(crl->revoked_serials() == serials);
    CHECK(crl->this_update() == this_update);
    CHECK(crl->next_update() == next_update);
    CHECK(crl->lists_serial(p.pck.serial()));
    CHECK_FALSE(crl->lists_serial(p.platform_ca.serial()));
    CHECK(crl->verify_issued_by(p.platform_ca).ok());
    CHECK_FALSE(crl->verify_issued_by(p.root).ok());

    // An empty CRL leaves revokedCertificates out.
    auto empty = sim::write_crl(p.root_key, p.root, {}, this_update, this_update + one_day);
    REQUIRE(empty.ok());
    auto empty_crl = Crl::from_der(*empty);
    REQUIRE(empty_crl.ok());
    CHECK(empty_crl->revoked_serials().empty());
    CHECK(empty_crl->verify_issued_by(p.root).ok());

    CHECK_FALSE(sim::write_crl(p.root_key, p.platform_ca, {}, this_update, next_update).ok());  // not its key
    CHECK_FALSE(sim::write_crl(p.root_key, p.root, {}, next_update, this_update).ok());
    CHECK_FALSE(sim::write_crl(p.root_key, p.root, {Bytes{}}, this_update, next_update).ok());

    if (!have_openssl()) return;
    TempDir dir;
    auto crl_file = dir.write("pck.crl.der", *der);
    auto ca_file = dir.write("ca.pem", as_bytes(p.platform_ca.pem()));
    auto text = run_command("openssl crl -inform DER -noout -text -in " + crl_file);
    INFO(text.output);
    CHECK(text.status == 0);
    CHECK(text.output.find("Version 2 (0x1)") != std::string::npos);
    CHECK(text.output.find("Signature Algorithm: ecdsa-with-SHA256") != std::string::npos);
    CHECK(text.output.find("Issuer: CN = Dstack Simulated PCK Platform CA") != std::string::npos);
    CHECK(text.output.find("Last Update: Jan  1 00:00:00 2025 GMT") != std::string::npos);
    CHECK(text.output.find("Next Update: Jan  1 01:00:00 2050 GMT") != std::string::npos);
    CHECK(text.output.find("X509v3 CRL Number") != std::string::npos);
    CHECK(text.output.find("X509v3 Authority Key Identifier") != std::string::npos);
    CHECK(text.output.find("Serial Number: 2A") != std::string::npos);
    CHECK(text.output.find("Serial Number: 80") != std::string::npos);
    auto verify = run_command("openssl crl -inform DER -noout -in " + crl_file + " -CAfile " + ca_file);
    INFO(verify.output);
    CHECK(verify.status == 0);
    CHECK(verify.output.find("verify OK") != std::string::npos);

    auto empty_file = dir.write("root.crl.der", *empty);
    auto empty_text = run_command("openssl crl -inform DER -noout -text -in " + empty_file);
    INFO(empty_text.output);
    CHECK(empty_text.status == 0);
    CHECK(empty_text.output.find("No Revoked Certificates") != std::string::npos);
}

TEST_CASE("sim quotes parse and carry the given report data") {
    const auto& p = pki();
    Fixed<64> report_data = filled<64>(0x5a);
    struct Case {
        std::uint16_t version;
        bool td15;
        std::uint16_t body_type;
        std::uint32_t body_size;
    };
    for (Case c : {Case{3, false, 1, 384}, Case{4, false, 2, 584}, Case{5, false, 2, 584}, Case{5, true, 3, 648}}) {
        CAPTURE(c.version);
        CAPTURE(c.td15);
        sim::SimQuoteOptions options;
        options.version = c.version;
        options.td15 = c.td15;
        options.report_data = report_data;
        auto raw = sim::make_quote(p, options);
        REQUIRE_MESSAGE(raw.ok(), (raw.ok() ? "" : raw.error().message));
        auto quote = parse_quote(*raw);
        REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
        CHECK(quote->header.version == c.version);
        CHECK(quote->header.attestation_key_type == 2);
        CHECK(quote->header.qe_vendor_id == intel_qe_vendor_id);
        CHECK(quote->header.tee_type == (c.version == 3 ? tee_type_sgx : tee_type_tdx));
        CHECK(quote->body_type == c.body_type);
        CHECK(quote->body_size == c.body_size);
        CHECK(quote->report_data() == report_data);
        CHECK(quote->trailing_bytes == 0);

        // The QE report is the simulated QE's, signed by the PCK key, binding the attestation key.
        const auto& auth = quote->auth;
        CHECK(auth.certification_data_type == cert_type_pck_chain);
        CHECK(as_chars(auth.certification_data) == p.pck_chain_pem());
        CHECK(auth.outer_certification_data_type == (c.version == 3 ? 0 : cert_type_qe_report));
        CHECK(auth.qe_report.mr_signer == sim::sim_qe_mr_signer());
        CHECK(auth.qe_report.isv_svn == 8);
        CHECK(auth.qe_report.isv_prod_id == (c.version == 3 ? 1 : 2));
        CHECK(crypto::p256_verify(p.pck_key.public_key(), auth.qe_report_bytes, auth.qe_report_signature));
        REQUIRE(auth.qe_auth_data.size() == 32);
        auto binding = crypto::sha256(concat({auth.ecdsa_attestation_key, auth.qe_auth_data}));
        CHECK(std::equal(binding.begin(), binding.end(), auth.qe_report.report_data.begin()));
        Bytes attestation_key = concat({Bytes{0x04}, auth.ecdsa_attestation_key});
        CHECK(crypto::p256_verify(attestation_key, ByteView(*raw).first(quote->signed_length), auth.ecdsa_signature));

        if (c.version == 3) {
            CHECK(quote->enclave_report()->mr_enclave == sim::default_enclave_report().mr_enclave);
            CHECK(quote->header.pce_svn == 13);
        } else {
            const auto* td = quote->td_report();
            REQUIRE(td != nullptr);
            CHECK(td->mr_td == sim::default_td_report().mr_td);
            CHECK(td->td_attributes == Fixed<8>{0, 0, 0, 0x10, 0, 0, 0, 0});
            CHECK(td->mr_signer_seam == Fixed<48>{});
        }
    }

    // Every quote gets its own attestation key.
    auto first = parse_quote(*sim::make_quote(p));
    auto second = parse_quote(*sim::make_quote(p));
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    CHECK(first->auth.ecdsa_attestation_key != second->auth.ecdsa_attestation_key);

    // A chosen TD body comes through unchanged.
    sim::SimQuoteOptions options;
    TdReport10 td = sim::default_td_report();
    td.rt_mr3 = filled<48>(0x33);
    td.mr_config_id = filled<48>(0x44);
    options.td = td;
    auto custom = parse_quote(*sim::make_quote(p, options));
    REQUIRE(custom.ok());
    CHECK(custom->td_report()->rt_mr3 == td.rt_mr3);
    CHECK(custom->td_report()->mr_config_id == td.mr_config_id);

    options.version = 6;
    CHECK_FALSE(sim::make_quote(p, options).ok());
}

TEST_CASE("sim collateral: Intel-shaped TCB info and QE identity, signed") {
    const auto& p = pki();
    sim::SimCollateralOptions options;
    auto collateral = sim::make_collateral(p, options);
    REQUIRE_MESSAGE(collateral.ok(), (collateral.ok() ? "" : collateral.error().message));
    auto signer = p.tcb_signing_key.public_key();
    CHECK(crypto::p256_verify(signer, as_bytes(collateral->tcb_info), collateral->tcb_info_signature));
    CHECK(crypto::p256_verify(signer, as_bytes(collateral->qe_identity), collateral->qe_identity_signature));
    CHECK(collateral->root_ca_crl == p.root_ca_crl);
    CHECK(collateral->pck_crl == p.pck_crl);
    CHECK(collateral->tcb_info_issuer_chain == p.tcb_signing_chain_pem());
    CHECK(collateral->qe_identity_issuer_chain == p.tcb_signing_chain_pem());
    CHECK(collateral->pck_crl_issuer_chain == p.platform_ca.pem() + p.root.pem());
    CHECK_FALSE(collateral->pck_certificate_chain.has_value());

    // Intel's compact form and key order.
    CHECK(collateral->tcb_info.rfind(
              "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"2025-01-01T00:00:00Z\",\"nextUpdate\":\"2025-01-31T00:00:00Z\","
              "\"fmspc\":\"00906ED50000\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,\"tdxModule\":{",
              0) == 0);
    CHECK(collateral->tcb_info.find("\"tdxModuleIdentities\":[{\"id\":\"TDX_01\"") != std::string::npos);
    CHECK(collateral->tcb_info.find(' ') == std::string::npos);
    CHECK(collateral->qe_identity.rfind("{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"2025-01-01T00:00:00Z\"", 0) == 0);

    auto tcb_info = parse_tcb_info(collateral->tcb_info);
    REQUIRE_MESSAGE(tcb_info.ok(), (tcb_info.ok() ? "" : tcb_info.error().message));
    CHECK(tcb_info->is_tdx());
    CHECK(tcb_info->issue_date == pki_not_before);
    CHECK(tcb_info->next_update == pki_not_before + 30 * one_day);
    CHECK(hex_encode(tcb_info->fmspc) == "00906ed50000");
    CHECK(hex_encode(tcb_info->pce_id) == "0000");
    REQUIRE(tcb_info->tcb_levels.size() == 1);
    const auto& level = tcb_info->tcb_levels[0];
    auto cpu_svn = sim::default_pck_extension().cpu_svn;
    auto tee_tcb_svn = sim::default_td_report().tee_tcb_svn;
    CHECK(level.sgx_components == std::vector<std::uint8_t>(cpu_svn.begin(), cpu_svn.end()));
    CHECK(level.tdx_components == std::vector<std::uint8_t>(tee_tcb_svn.begin(), tee_tcb_svn.end()));
    CHECK(level.pce_svn == 13);
    CHECK(level.verdict.status == TcbStatus::up_to_date);
    CHECK(level.verdict.advisory_ids.empty());
    REQUIRE(tcb_info->tdx_module.has_value());
    CHECK(tcb_info->tdx_module->mr_signer == Bytes(48, 0));
    CHECK(hex_encode(tcb_info->tdx_module->attributes_mask) == "ffffffffffffffff");
    REQUIRE(tcb_info->tdx_module_identities.size() == 1);
    CHECK(tcb_info->tdx_module_identities[0].id == "TDX_01");
    REQUIRE(tcb_info->tdx_module_identities[0].tcb_levels.size() == 1);
    CHECK(tcb_info->tdx_module_identities[0].tcb_levels[0].isv_svn == tee_tcb_svn[0]);

    auto qe_identity = parse_qe_identity(collateral->qe_identity);
    REQUIRE_MESSAGE(qe_identity.ok(), (qe_identity.ok() ? "" : qe_identity.error().message));
    CHECK(qe_identity->id == "TD_QE");
    CHECK(qe_identity->version == 2);
    CHECK(qe_identity->isv_prod_id == 2);
    CHECK(qe_identity->mr_signer == Bytes(sim::sim_qe_mr_signer().begin(), sim::sim_qe_mr_signer().end()));
    CHECK(hex_encode(qe_identity->attributes_mask) == "fbffffffffffffff0000000000000000");
    REQUIRE(qe_identity->tcb_levels.size() == 1);
    CHECK(qe_identity->tcb_levels[0].isv_svn == 8);

    // SGX, statuses, advisories and another FMSPC.
    options.tdx = false;
    options.tcb_status = "OutOfDate";
    options.advisory_ids = {"INTEL-SA-00001", "INTEL-SA-00002"};
    options.qe_tcb_status = "SWHardeningNeeded";
    options.fmspc = Bytes{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    options.issue_date = pki_not_before + 5 * one_day;
    auto sgx = sim::make_collateral(p, options);
    REQUIRE(sgx.ok());
    auto sgx_info = parse_tcb_info(sgx->tcb_info);
    REQUIRE_MESSAGE(sgx_info.ok(), (sgx_info.ok() ? "" : sgx_info.error().message));
    CHECK(sgx_info->id == "SGX");
    CHECK(sgx_info->version == 3);
    CHECK_FALSE(sgx_info->tdx_module.has_value());
    CHECK(sgx_info->tdx_module_identities.empty());
    CHECK(sgx_info->issue_date == pki_not_before + 5 * one_day);
    CHECK(hex_encode(sgx_info->fmspc) == "ffffffffffff");
    REQUIRE(sgx_info->tcb_levels.size() == 1);
    CHECK(sgx_info->tcb_levels[0].tdx_components.empty());
    CHECK(sgx_info->tcb_levels[0].verdict.status == TcbStatus::out_of_date);
    CHECK(sgx_info->tcb_levels[0].verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00001", "INTEL-SA-00002"});
    auto sgx_qe = parse_qe_identity(sgx->qe_identity);
    REQUIRE(sgx_qe.ok());
    CHECK(sgx_qe->id == "QE");
    CHECK(sgx_qe->isv_prod_id == 1);
    CHECK(sgx_qe->tcb_levels[0].verdict.status == TcbStatus::sw_hardening_needed);
    CHECK(sgx_qe->issue_date == pki_not_before + 5 * one_day);

    // sign_document signs exactly the given text.
    std::string edited = collateral->tcb_info;
    edited.replace(edited.find("UpToDate"), 8, "Revoked");
    CHECK(crypto::p256_verify(signer, as_bytes(edited), sim::sign_document(p, edited)));
    CHECK_FALSE(crypto::p256_verify(signer, as_bytes(edited), collateral->tcb_info_signature));
}

TEST_CASE("sim runtime log: events through make_runtime_event, RTMR3 their replay") {
    std::vector<sim::SimRuntimeEvent> emitted = {{"system-preparing", {}}, {"app-id", Bytes(20, 1)}, {"system-ready", {}}};
    auto log = sim::make_runtime_log(emitted);
    REQUIRE(log.ok());
    REQUIRE(log->events.size() == 3);
    CHECK(log->events[1].event == "app-id");
    CHECK(log->events[1].digest == runtime_event_digest("app-id", Bytes(20, 1), 1));
    CHECK(log->rtmr3 == replay_runtime_events(log->events));
    auto v2 = sim::make_runtime_log(emitted, 2);
    REQUIRE(v2.ok());
    CHECK(v2->rtmr3 == replay_runtime_events(v2->events));
    CHECK(v2->rtmr3 != log->rtmr3);

    // The simulator cannot emit what the verifier refuses.
    emitted.push_back({"a:b", to_bytes("c")});
    auto refused = sim::make_runtime_log(emitted);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("runtime event \"a:b\": the name contains ':'") == 0);
}
