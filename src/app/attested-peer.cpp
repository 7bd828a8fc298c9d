#include "dstack/app/attested-peer.hpp"

#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::app {
namespace {

std::vector<tee::TdxEvent> runtime_events(const tee::Evidence& evidence) {
    if (evidence.runtime_events) return *evidence.runtime_events;
    std::vector<tee::TdxEvent> events;
    for (const auto& event : evidence.event_log)
        if (event.event_type == tee::runtime_event_type) events.push_back(event);
    return events;
}

// vm_config's os_image_hash: nullopt when the text is empty or has none.
Result<std::optional<Bytes>> vm_config_os_image_hash(std::string_view vm_config, std::string_view which) {
    if (vm_config.empty()) return std::optional<Bytes>();
    auto document = json::read_json(vm_config, {64 * 1024, 16});
    if (!document) return document.error().context(fmt::format("{} vm_config", which));
    auto object = document->root().object();
    if (!object) return object.error().context(fmt::format("{} vm_config", which));
    auto value = object->optional("os_image_hash");
    if (!value) {
        // An attestation's config is the whole sys-config, which carries the VM config as text.
        auto nested = object->optional("vm_config");
        if (!nested || !nested->is_string()) return std::optional<Bytes>();
        auto text = nested->string();
        if (!text) return text.error().context(fmt::format("{} vm_config", which));
        if (text->find("\"vm_config\"") != std::string::npos) return make_error("{} vm_config nests too deep", which);
        return vm_config_os_image_hash(*text, which);
    }
    auto hash = value->hex();
    if (!hash) return hash.error().context(fmt::format("{} vm_config", which));
    if (hash->empty()) return std::optional<Bytes>();
    return std::optional<Bytes>(std::move(*hash));
}

}  // namespace

asio::awaitable<Result<AttestedPeer>> verify_attested_peer(const Verifier& verifier, const tee::Evidence& evidence,
                                                           bool boot_time) {
    auto verdict = co_await verifier.verify(evidence, Expectations());
    if (!verdict) co_return verdict.error().context("invalid quote");
    if (!verdict->valid) co_return make_error("invalid quote: {}", verdict->reason);
    const tee::TdReport10* td = verdict->quote ? verdict->quote->td_report() : nullptr;
    if (!td || !verdict->app_info || !verdict->dcap.ok()) {
        co_return make_error("invalid quote: the attestation carries no dstack app identity (no app-id and compose-hash "
                             "events in RTMR3)");
    }
    AttestedPeer peer;
    const auto& report = *verdict->dcap.report;
    peer.tcb_status = std::string(tee::tcb_status_name(report.verdict.status));
    peer.advisory_ids = report.verdict.advisory_ids;
    peer.ppid = report.ppid;
    peer.vm_config = evidence.vm_config.value_or("");
    peer.app_info = boot_time ? decode_app_info(*td, runtime_events(evidence), report.ppid, true) : *verdict->app_info;
    peer.verdict = std::move(*verdict);
    co_return peer;
}

Result<Bytes> decision_os_image_hash(const AttestedPeer& peer, std::string_view request_vm_config) {
    DSTACK_TRY(auto requested, vm_config_os_image_hash(request_vm_config, "the request's"));
    const Bytes& measured = peer.app_info.os_image_hash;
    if (!measured.empty()) {
        if (requested && *requested != measured) {
            return make_error("the request's vm_config names OS image {} but the CVM measured os-image-hash {}",
                              hex_encode(*requested), hex_encode(measured));
        }
        return measured;
    }
    if (requested) return std::move(*requested);
    DSTACK_TRY(auto embedded, vm_config_os_image_hash(peer.vm_config, "the attestation's"));
    return embedded.value_or(Bytes{});
}

}  // namespace dstack::app
