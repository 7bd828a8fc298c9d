// The guest agent's state and its API, transport-free: each method takes a decoded request and
// returns the reply upstream sends (spec/agent.md §2-§5). The services (services.cpp) mount these
// on the sockets; everything here is safe to call from several threads at once.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "dstack/app/agent-requests.hpp"
#include "dstack/app/boot-files.hpp"
#include "dstack/app/guest-keys.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/net/prpc-message.hpp"
#include "dstack/tee/attestation.hpp"
#include "dstack/tee/attester.hpp"

namespace dstack::applets::agent {

// The host-shared files, read once at start (spec/agent.md §7.1).
struct BootFiles {
    std::string compose_text;  // app-compose.json verbatim: its SHA-256 is the compose hash
    app::AppComposeInfo compose;
    std::string sys_config_text;
    app::SysConfig sys_config;
    app::AppKeys keys;
    std::optional<app::InstanceInfo> instance;
};

struct AgentSettings {
    AgentSettings() = default;
    // Quote responses carry the stripped event log (real TDX, as upstream); the simulator's full one.
    bool strip_quote_event_log = true;
    // GetTlsKey/DeriveKey certificates also carry the legacy 1.1 (quote) and 1.2 (event log) extensions.
    bool legacy_cert_extensions = false;
    std::filesystem::path gpu_attestation_file = "/run/nvidia-gpu-attestation/attestation.out";
    std::filesystem::path dmi_dir = "/sys/class/dmi/id";
};

using Reply = net::prpc::Reply;

// The runtime log's budget for EmitEvent (boot events count too): the log is carried twice in a
// V0 attestation, which must fit in a certificate's 40 KiB of extensions next to a 5 KB quote;
// with the legacy extensions a third time, as JSON, next to a second copy of the quote.
struct RuntimeLogBudget {
    std::size_t events;
    std::size_t bytes;  // names and payloads
};
inline constexpr RuntimeLogBudget runtime_log_budget{256, 12 * 1024};
inline constexpr RuntimeLogBudget legacy_runtime_log_budget{64, 4 * 1024};

class Agent {
public:
    // A live agent: quotes and runtime events through `attester`.
    static Result<std::shared_ptr<Agent>> create(BootFiles files, std::unique_ptr<tee::Attester> attester,
                                                 AgentSettings settings);
    // Upstream's simulator mode: every attestation is `fixture` with the report data patched in
    // (quote signatures then no longer verify); no runtime events can be emitted.
    static Result<std::shared_ptr<Agent>> create_from_fixture(BootFiles files, tee::Evidence fixture,
                                                              AgentSettings settings);

    // DstackGuest (dstack.sock).
    Result<Reply> get_tls_key(const app::GetTlsKeyArgs& args) const;
    Result<Reply> get_key(const app::GetKeyArgs& args) const;
    Result<Reply> get_quote(const app::RawQuoteArgs& args) const;
    Result<Reply> attest(const app::RawQuoteArgs& args) const;
    // external: the Worker/GuestApi form, which hides tcb_info and vm_config unless public_tcbinfo.
    Result<Reply> info(bool external = false) const;
    Result<Reply> gpu_info() const;
    Result<Reply> sign(const app::SignArgs& args) const;
    Result<Reply> verify(const app::VerifyArgs& args) const;
    Result<Reply> version() const;
    Result<Reply> emit_event(const app::EmitEventArgs& args) const;

    // Tappd (tappd.sock).
    Result<Reply> derive_key(const app::DeriveKeyArgs& args) const;
    Result<Reply> derive_k256_key(const app::GetKeyArgs& args) const;
    Result<Reply> tdx_quote(const app::TdxQuoteArgs& args) const;
    Result<Reply> raw_quote(const app::RawQuoteArgs& args) const;

    // Worker (external listener) and GuestApi (vsock).
    Result<Reply> app_key_attestation(const app::AppKeyAttestationArgs& args) const;
    Result<Reply> guest_info() const;
    const BootFiles& files() const { return files_; }
    std::string_view tee_kind() const;

    // What a verifier would check first, checked at start: the boot and runtime events replay to
    // the quote's RTMRs, and app-compose.json is the file whose hash was measured at boot. The
    // error says which file disagrees and how to recover.
    Result<void> check_consistency(const std::filesystem::path& runtime_log_dir) const;

    // A quote over report_data with the events that replay to it.
    Result<tee::Attested> attested(const tee::Fixed<64>& report_data) const;

private:
    Agent(BootFiles files, AgentSettings settings);
    Result<void> load_ca();

    Result<app::AppInfo> app_info(const tee::Attested& attested) const;
    // Info's tcb_info: the TD's measurements, the full event log and the compose text, as JSON.
    Result<std::string> tcb_info_text(const tee::Attested& attested, const app::AppInfo& info) const;
    // The config an attestation carries: the sys-config text (the fixture's own in fixture mode).
    std::string attestation_config() const;
    // Info.app_cert: the demo certificate chain, issued once on first use.
    std::string app_cert() const;
    Result<Reply> quote_reply(const tee::Fixed<64>& report_data, std::optional<std::string> hash_algorithm,
                              std::optional<std::string> prefix) const;
    struct CertOptions;
    Result<Reply> issue_certificate(const crypto::P256PrivateKey& key, const CertOptions& options) const;
    Result<Reply> kms_certificate(const crypto::P256PrivateKey& key, const CertOptions& options) const;

    BootFiles files_;
    AgentSettings settings_;
    app::AppRootKey root_key_;
    std::optional<crypto::P256PrivateKey> ca_key_;  // the app CA (key providers none, local, tpm)
    std::optional<crypto::Certificate> ca_cert_;
    std::unique_ptr<tee::Attester> attester_;
    std::optional<tee::Evidence> fixture_;
    mutable std::mutex app_cert_mutex_;
    mutable std::mutex emit_mutex_;
    mutable std::string app_cert_;
};

// The boot events of spec/agent.md §7.2 for these files, as dstack-util emits them before the
// agent starts; the simulator emits them itself on first start.
struct BootEvent {
    std::string name;
    Bytes payload;
};
Result<std::vector<BootEvent>> boot_events_for(const BootFiles& files);

}  // namespace dstack::applets::agent
