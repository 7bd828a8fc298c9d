// The agent's API (spec/agent.md §2-§4): keys from the app keys, quotes and attestations from the
// attester (or upstream's fixture), app info decoded from the runtime events.
#include "agent.hpp"

#include <algorithm>
#include <cctype>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "dstack/app/report-data.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/log.hpp"
#include "dstack/base/printable.hpp"
#include "dstack/base/version.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/quote.hpp"
#include "event-log-forms.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::agent {

namespace {

// The quote's report data sits at bytes 568..632 of a v4 TD quote (48-byte header + 520).
constexpr std::size_t td_quote_report_data_offset = 48 + 520;

// Events dstack-util measures at boot (spec/agent.md §7.2): an app must not fake one of them
// after the fact, since verifiers and the KMS read app identity from the first of each name.
constexpr std::string_view reserved_event_names[] = {
    "system-preparing", "app-id",     "compose-hash",  "init-script-hash", "gpu-policy-hash",
    "gpu-attestation",  "instance-id", "boot-mr-done", "os-image-hash",    "key-provider",
    "storage-fs",       "system-ready", "rootfs-hash", "mr-kms",
};

tee::Fixed<64> to_fixed(const app::ReportData& data) {
    tee::Fixed<64> out{};
    std::copy(data.begin(), data.end(), out.begin());
    return out;
}

std::string pretty_json(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    writer.SetIndent(' ', 2);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string trimmed_file(const std::filesystem::path& path) {
    auto text = read_text_file(path, 4096);
    if (!text) return "";
    std::string value = *text;
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
    std::size_t start = 0;
    while (start < value.size() && std::isspace(static_cast<unsigned char>(value[start]))) ++start;
    return value.substr(start);
}

}  // namespace

Agent::Agent(BootFiles files, AgentSettings settings)
    : files_(std::move(files)), settings_(std::move(settings)) {
    root_key_.k256_key = files_.keys.k256_key;
    root_key_.k256_signature = files_.keys.k256_signature;
}

Result<void> Agent::load_ca() {
    const auto& provider = files_.keys.key_provider;
    if (provider.kind == app::KeyProvider::Kind::kms) return {};  // certificates come from the KMS
    if (provider.key_pem.empty()) return make_error(".appkeys.json: key_provider: no CA key");
    auto key = crypto::P256PrivateKey::from_pem(provider.key_pem);
    if (!key) return std::move(key).take_error().context(".appkeys.json: key_provider.key");
    auto cert = crypto::Certificate::from_pem(files_.keys.ca_cert_pem);
    if (!cert) return std::move(cert).take_error().context(".appkeys.json: ca_cert");
    if (cert->spki_der() != key->spki_der()) {
        return make_error(".appkeys.json: ca_cert is not the certificate of key_provider.key");
    }
    ca_key_ = std::move(*key);
    ca_cert_ = std::move(*cert);
    return {};
}

Result<std::shared_ptr<Agent>> Agent::create(BootFiles files, std::unique_ptr<tee::Attester> attester,
                                             AgentSettings settings) {
    std::shared_ptr<Agent> agent(new Agent(std::move(files), std::move(settings)));
    DSTACK_CHECK(agent->load_ca());
    agent->attester_ = std::move(attester);
    return agent;
}

Result<std::shared_ptr<Agent>> Agent::create_from_fixture(BootFiles files, tee::Evidence fixture,
                                                          AgentSettings settings) {
    std::shared_ptr<Agent> agent(new Agent(std::move(files), std::move(settings)));
    DSTACK_CHECK(agent->load_ca());
    auto quote = tee::parse_quote(fixture.quote);
    if (!quote) return std::move(quote).take_error().context("fixture quote");
    if (!quote->td_report() || fixture.quote.size() < td_quote_report_data_offset + 64) {
        return make_error("fixture: not a TDX quote");
    }
    // The fixture is replayed as it is; refuse one whose events could not replay at all.
    auto check_runtime = [](const tee::TdxEvent& event) -> Result<void> {
        if (!event.digest.empty() &&
            event.digest != tee::runtime_event_digest(event.event, event.event_payload, event.version)) {
            return make_error("fixture: runtime event '{}' carries a digest that is not its name's and payload's",
                              printable_text(event.event));
        }
        return {};
    };
    for (const auto& event : fixture.event_log) {
        if (event.imr > 3) return make_error("fixture: an event for IMR {} (RTMR0-3 only)", event.imr);
        if (event.imr == 3) DSTACK_CHECK(check_runtime(event));
    }
    if (fixture.runtime_events) {
        for (const auto& event : *fixture.runtime_events) DSTACK_CHECK(check_runtime(event));
    }
    if (auto measured = app::find_runtime_event(fixture.runtime_events.value_or(std::vector<tee::TdxEvent>{}), "compose-hash")) {
        if (*measured != app::compose_hash(as_bytes(agent->files_.compose_text))) {
            log::warn("fixture: its compose hash {} is not app-compose.json's; Info shows the fixture's identity with "
                      "this file's name and text",
                      hex_encode(*measured));
        }
    }
    agent->fixture_ = std::move(fixture);
    return agent;
}

std::string_view Agent::tee_kind() const { return fixture_ ? "fixture" : attester_->kind(); }

Result<tee::Attested> Agent::attested(const tee::Fixed<64>& report_data) const {
    if (!fixture_) return attester_->attest(report_data);
    // Upstream's simulator: the fixture with the report data patched into the quote (whose
    // signature therefore no longer verifies).
    tee::Attested out;
    out.quote = fixture_->quote;
    std::copy(report_data.begin(), report_data.end(), out.quote.begin() + td_quote_report_data_offset);
    out.report_data = report_data;
    for (const auto& event : fixture_->event_log) {
        if (event.imr < 3) out.boot_events.push_back(event);
    }
    if (fixture_->runtime_events) {
        out.runtime_events = *fixture_->runtime_events;
    } else {
        for (const auto& event : fixture_->event_log) {
            if (event.imr == 3) out.runtime_events.push_back(event);
        }
    }
    for (auto& event : out.runtime_events) {
        event.imr = 3;
        event.event_type = tee::runtime_event_type;
        if (event.digest.empty()) event.digest = tee::runtime_event_digest(event.event, event.event_payload, event.version);
        if (event.version == 2 && !event.preimage) {
            event.preimage = tee::runtime_event_preimage(event.event, event.event_payload, 2);
        }
    }
    return out;
}

// ---- start-up ----

Result<void> Agent::check_consistency(const std::filesystem::path& runtime_log_dir) const {
    DSTACK_TRY(auto attested, this->attested(tee::Fixed<64>{}));
    DSTACK_TRY(auto quote, tee::parse_quote(attested.quote));
    if (!quote.td_report()) return make_error("own quote: not a TD quote");
    const auto& report = *quote.td_report();
    DSTACK_TRY(auto boot, tee::replay_rtmrs(attested.boot_events));
    const tee::Fixed<48>* quoted[] = {&report.rt_mr0, &report.rt_mr1, &report.rt_mr2};
    for (int i = 0; i < 3; ++i) {
        if (!std::equal(boot[i].begin(), boot[i].end(), quoted[i]->begin())) {
            return make_error("the boot event log does not replay to RTMR{} of this TD", i);
        }
    }
    auto rtmr3 = tee::replay_runtime_events(attested.runtime_events);
    if (!std::equal(rtmr3.begin(), rtmr3.end(), report.rt_mr3.begin())) {
        return make_error(
            "{}: the runtime event log ({} events) does not replay to RTMR3 (an event measured without its log line, "
            "or an edited log): every quote would fail verification",
            (runtime_log_dir / "runtime_events.log").string(), attested.runtime_events.size());
    }
    if (auto measured = app::find_runtime_event(attested.runtime_events, "compose-hash")) {
        auto actual = app::compose_hash(as_bytes(files_.compose_text));
        if (*measured != actual) {
            return make_error("app-compose.json has SHA-256 {} but the compose hash measured at boot is {}: the file "
                              "changed after boot, and Info would describe another app than the one attested",
                              hex_encode(actual), hex_encode(*measured));
        }
    }
    return {};
}

// ---- app info ----

Result<app::AppInfo> Agent::app_info(const tee::Attested& attested) const {
    auto quote = tee::parse_quote(attested.quote);
    if (!quote) return std::move(quote).take_error().context("own quote");
    const auto* report = quote->td_report();
    if (!report) return make_error("own quote: not a TD quote");
    // The agent's own attestation is not verified here, so there is no PPID: device_id is
    // SHA-256 of nothing, as upstream's.
    auto info = app::decode_app_info(*report, attested.runtime_events, {});
    if (fixture_) {
        // Upstream takes the OS image hash from the attestation's config.
        if (fixture_->vm_config) {
            if (auto config = app::parse_sys_config(*fixture_->vm_config)) info.os_image_hash = config->os_image_hash;
        }
    } else {
        info.os_image_hash = files_.sys_config.os_image_hash;
    }
    return info;
}

Result<std::string> Agent::tcb_info_text(const tee::Attested& attested, const app::AppInfo& info) const {
    DSTACK_TRY(auto quote, tee::parse_quote(attested.quote));
    if (!quote.td_report()) return make_error("own quote: not a TD quote");
    const auto& report = *quote.td_report();
    JsonObject tcb;
    tcb.hex("mrtd", report.mr_td).hex("rtmr0", report.rt_mr0).hex("rtmr1", report.rt_mr1);
    tcb.hex("rtmr2", report.rt_mr2).hex("rtmr3", report.rt_mr3);
    tcb.hex("mr_aggregated", info.mr_aggregated).hex("os_image_hash", info.os_image_hash);
    tcb.hex("compose_hash", info.compose_hash).hex("device_id", info.device_id);
    DSTACK_TRY(auto events, json::read_json(tee::event_log_to_json(full_event_log(attested)), {64 * 1024 * 1024, 16}));
    rapidjson::Value array;
    array.CopyFrom(events.dom(), tcb.allocator());
    tcb.value("event_log", std::move(array));
    tcb.string("app_compose", files_.compose_text);
    return pretty_json(tcb.document());
}

Result<Reply> Agent::info(bool external) const {
    DSTACK_TRY(auto attested, this->attested(tee::Fixed<64>{}));
    DSTACK_TRY(auto info, app_info(attested));
    bool hide = external && !files_.compose.public_tcbinfo;
    std::string tcb_info;
    if (!hide) {
        DSTACK_TRY(auto text, tcb_info_text(attested, info));
        tcb_info = std::move(text);
    }
    JsonObject out;
    out.hex("app_id", info.app_id).hex("instance_id", info.instance_id);
    out.string("app_cert", app_cert());
    out.string("tcb_info", tcb_info);
    out.string("app_name", files_.compose.name);
    out.hex("device_id", info.device_id).hex("mr_aggregated", info.mr_aggregated);
    out.hex("os_image_hash", info.os_image_hash);
    out.string("key_provider_info", std::string(info.key_provider_info.begin(), info.key_provider_info.end()));
    out.hex("compose_hash", info.compose_hash);
    out.string("vm_config", hide ? std::string() : files_.sys_config.vm_config);
    out.string("cloud_vendor", trimmed_file(settings_.dmi_dir / "sys_vendor"));
    out.string("cloud_product", trimmed_file(settings_.dmi_dir / "product_name"));
    return out.reply();
}

Result<Reply> Agent::guest_info() const {
    DSTACK_TRY(auto attested, this->attested(tee::Fixed<64>{}));
    DSTACK_TRY(auto info, app_info(attested));
    // GuestApi.Info is built from the external Info: tcb_info only when public_tcbinfo.
    std::string tcb_info;
    if (files_.compose.public_tcbinfo) {
        DSTACK_TRY(auto text, tcb_info_text(attested, info));
        tcb_info = std::move(text);
    }
    JsonObject out;
    out.string("version", dstack::version());
    out.hex("app_id", info.app_id).hex("instance_id", info.instance_id);
    out.string("app_cert", app_cert());
    out.string("tcb_info", tcb_info);
    out.hex("device_id", info.device_id);
    return out.reply();
}

// ---- keys ----

Result<Reply> Agent::get_key(const app::GetKeyArgs& args) const {
    DSTACK_TRY(auto algorithm, app::parse_key_algorithm(args.algorithm));
    DSTACK_TRY(auto key, app::derive_app_key(root_key_, args.path, args.purpose, algorithm));
    JsonObject out;
    out.hex("key", key.key).hex_list("signature_chain", key.signature_chain);
    return out.reply();
}

Result<Reply> Agent::derive_k256_key(const app::GetKeyArgs& args) const {
    DSTACK_TRY(auto algorithm, app::parse_key_algorithm(args.algorithm));
    DSTACK_TRY(auto key, app::derive_app_key(root_key_, args.path, args.purpose, algorithm));
    JsonObject out;
    out.hex("k256_key", key.key).hex_list("k256_signature_chain", key.signature_chain);
    return out.reply();
}

Result<Reply> Agent::sign(const app::SignArgs& args) const {
    DSTACK_TRY(auto algorithm, app::parse_sign_algorithm(args.algorithm));
    DSTACK_TRY(auto signed_data, app::sign_with_app_key(root_key_, algorithm, args.data));
    JsonObject out;
    out.hex("signature", signed_data.signature).hex_list("signature_chain", signed_data.signature_chain);
    out.hex("public_key", signed_data.public_key);
    return out.reply();
}

Result<Reply> Agent::verify(const app::VerifyArgs& args) const {
    DSTACK_TRY(auto algorithm, app::parse_sign_algorithm(args.algorithm));
    DSTACK_TRY(auto valid, app::verify_app_signature(algorithm, args.data, args.signature, args.public_key));
    JsonObject out;
    out.boolean("valid", valid);
    return out.reply();
}

// ---- quotes ----

Result<Reply> Agent::quote_reply(const tee::Fixed<64>& report_data, std::optional<std::string> hash_algorithm,
                                 std::optional<std::string> prefix) const {
    DSTACK_TRY(auto attested, this->attested(report_data));
    auto events = settings_.strip_quote_event_log && !fixture_ ? quote_event_log(attested) : full_event_log(attested, true);
    JsonObject out;
    out.hex("quote", attested.quote);
    out.string("event_log", tee::event_log_to_json(events));
    if (hash_algorithm) {
        // Tappd's TdxQuoteResponse: quote, event_log, hash_algorithm, prefix.
        out.string("hash_algorithm", *hash_algorithm).string("prefix", prefix.value_or(""));
        return out.reply();
    }
    out.hex("report_data", report_data);
    out.string("vm_config", files_.sys_config.vm_config);
    return out.reply();
}

Result<Reply> Agent::get_quote(const app::RawQuoteArgs& args) const {
    DSTACK_TRY(auto report_data, app::pad_report_data(args.report_data));
    return quote_reply(to_fixed(report_data), std::nullopt, std::nullopt);
}

Result<Reply> Agent::tdx_quote(const app::TdxQuoteArgs& args) const {
    std::string tag = args.prefix.empty() ? "app-data" : args.prefix;
    auto algorithm = std::string(app::effective_hash_algorithm(args.hash_algorithm));
    DSTACK_TRY(auto report_data, app::report_data_with_hash(tag, args.report_data, args.hash_algorithm));
    // The response names the effective algorithm and the tag without its colon ("" for raw).
    return quote_reply(to_fixed(report_data), algorithm, algorithm == "raw" ? std::string() : tag);
}

Result<Reply> Agent::raw_quote(const app::RawQuoteArgs& args) const {
    app::TdxQuoteArgs tdx;
    tdx.report_data = args.report_data;
    tdx.hash_algorithm = "raw";
    return tdx_quote(tdx);
}

Result<Reply> Agent::attest(const app::RawQuoteArgs& args) const {
    DSTACK_TRY(auto report_data, app::pad_report_data(args.report_data));
    DSTACK_TRY(auto attested, this->attested(to_fixed(report_data)));
    DSTACK_TRY(auto bytes, versioned_attestation(attested, full_event_log(attested, true), attestation_config()));
    JsonObject out;
    out.hex("attestation", bytes);
    return out.reply();
}

Result<Reply> Agent::app_key_attestation(const app::AppKeyAttestationArgs& args) const {
    // As upstream: GetKey with the algorithm as given (so secp256k1_prehashed is refused there),
    // then only ed25519, secp256k1 and k256 name a key form.
    DSTACK_TRY(auto algorithm, app::parse_key_algorithm(args.algorithm));
    if (args.algorithm.empty()) return make_error("Unsupported algorithm");
    DSTACK_TRY(auto key, app::derive_app_key(root_key_, "vms", "signing", algorithm));
    std::string text = algorithm == app::KeyAlgorithm::ed25519 ? "dip1::ed25519-pk:" : "dip1::secp256k1c-pk:";
    text += base64url_encode(key.public_key);
    DSTACK_TRY(auto report_data, app::pad_report_data(as_bytes(text)));
    return quote_reply(to_fixed(report_data), std::nullopt, std::nullopt);
}

// ---- events ----

Result<Reply> Agent::emit_event(const app::EmitEventArgs& args) const {
    DSTACK_CHECK(tee::check_runtime_event_name(args.event));
    // Also refused in another case or with spaces around it: such a look-alike could not change
    // the decoded identity (matching is exact), but it would mislead whoever reads the log.
    std::string folded;
    for (char c : args.event) {
        if (c != ' ') folded += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (std::find(std::begin(reserved_event_names), std::end(reserved_event_names), folded) !=
        std::end(reserved_event_names)) {
        return make_error("event name '{}' is reserved for the events measured at boot", args.event);
    }
    if (fixture_) return make_error("runtime event emission is unavailable in simulator mode");
    // The whole runtime log travels in every RA-TLS certificate (extension 1.8, at most 40 KiB),
    // so app events are budgeted to keep it there; the check and the emission are one step.
    std::lock_guard lock(emit_mutex_);
    DSTACK_TRY(auto events, attester_->runtime_events());
    std::size_t bytes = args.event.size() + args.payload.size();
    for (const auto& event : events) bytes += event.event.size() + event.event_payload.size();
    const auto& budget = settings_.legacy_cert_extensions ? legacy_runtime_log_budget : runtime_log_budget;
    if (events.size() >= budget.events || bytes > budget.bytes) {
        return make_error(
            "runtime event log full: {} events, {} bytes of names and payloads with this one (at most {} events and {} "
            "bytes, so that every RA-TLS certificate can carry the log)",
            events.size() + 1, bytes, budget.events, budget.bytes);
    }
    DSTACK_CHECK(attester_->emit(args.event, args.payload));
    log::info("EmitEvent: '{}' ({} bytes) measured into RTMR3", args.event, args.payload.size());
    return Reply::null();
}

// ---- misc ----

Result<Reply> Agent::gpu_info() const {
    std::string text;
    std::error_code ec;
    if (std::filesystem::exists(settings_.gpu_attestation_file, ec)) {
        auto content = read_text_file(settings_.gpu_attestation_file, 16 * 1024 * 1024);
        if (content) text = std::move(*content);
        else log::warn("GpuInfo: {}", content.error().message);
    }
    JsonObject out;
    out.string("attestation", text);
    return out.reply();
}

Result<Reply> Agent::version() const {
    JsonObject out;
    out.string("version", dstack::version()).string("rev", git_revision());
    return out.reply();
}

}  // namespace dstack::applets::agent
