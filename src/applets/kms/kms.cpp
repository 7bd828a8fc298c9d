#include "kms.hpp"

#include <fmt/format.h>

#include "dstack/app/app-certificates.hpp"
#include "dstack/app/app-info-encoding.hpp"
#include "dstack/app/cert-signing-request.hpp"
#include "dstack/app/kms-keys.hpp"
#include "dstack/app/kms-requests.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/base/version.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::kms {

using net::prpc::Call;
using net::prpc::Reply;

Result<std::shared_ptr<Kms>> Kms::create(Settings settings, app::KmsKeys keys, std::shared_ptr<app::Verifier> verifier,
                                         std::shared_ptr<app::KmsAuthorizer> authorizer) {
    std::shared_ptr<Kms> kms(new Kms(std::move(keys)));
    kms->agent_ = app::AgentClient(settings.agent_address.empty() ? app::AgentClient::default_address() : settings.agent_address);
    DSTACK_TRY(auto registry, app::AppEpochRegistry::open(settings.cert_dir));
    kms->registry_ = std::move(registry);
    kms->settings_ = std::move(settings);
    kms->verifier_ = std::move(verifier);
    kms->authorizer_ = std::move(authorizer);
    return kms;
}

asio::awaitable<Result<app::KmsAuthDecision>> Kms::authorize(const app::BootInfo& boot_info, app::KmsAuthTarget target) const {
    auto decision = co_await authorizer_->check(boot_info, target);
    if (!decision) {
        metrics_.denials++;
        co_return std::move(decision).take_error();
    }
    if (!decision->allowed) metrics_.denials++;
    co_return decision;
}

asio::awaitable<Result<app::BootInfo>> Kms::self_boot_info() const {
    {
        std::lock_guard lock(self_mutex_);
        if (self_boot_info_) co_return *self_boot_info_;
    }
    auto info = co_await own_boot_info(agent_, *verifier_);
    if (!info) co_return std::move(info).take_error();
    std::lock_guard lock(self_mutex_);
    self_boot_info_ = *info;
    co_return std::move(*info);
}

asio::awaitable<Result<void>> Kms::ensure_self_allowed() const {
    if (!settings_.enforce_self_authorization) co_return Result<void>();
    auto info = co_await self_boot_info();
    if (!info) co_return info.error().context("KMS self authorization failed");
    auto decision = co_await authorize(*info, app::KmsAuthTarget::kms);
    if (!decision) co_return decision.error().context("KMS self authorization failed");
    if (!decision->allowed) {
        co_return make_error("KMS self authorization failed: KMS is not allowed: {}", decision->reason);
    }
    co_return Result<void>();
}

Result<tee::Evidence> Kms::caller_evidence(const Call& call) const {
    static const std::vector<Bytes> none;
    const auto& chain = call.connection.tls ? call.connection.tls->peer_chain_der : none;
    return app::peer_evidence(chain, keys_.tmp_ca_cert);
}

asio::awaitable<Result<Kms::Admitted>> Kms::admit(const tee::Evidence& evidence, bool boot_time, std::string vm_config,
                                                  app::KmsAuthTarget target) const {
    std::string_view who = target == app::KmsAuthTarget::app ? "App" : "KMS";
    auto peer = co_await app::verify_attested_peer(*verifier_, evidence, boot_time);
    if (!peer) co_return std::move(peer).take_error();
    auto info = boot_info_of(*peer, vm_config);
    if (!info) co_return std::move(info).take_error();
    auto decision = co_await authorize(*info, target);
    if (!decision) co_return decision.error().context(fmt::format("{} not allowed", who));
    if (!decision->allowed) co_return make_error("{} not allowed: Boot denied: {}", who, decision->reason);
    Admitted admitted;
    admitted.peer = std::move(*peer);
    admitted.info = std::move(*info);
    admitted.decision = std::move(*decision);
    co_return admitted;
}

Result<const app::KmsRootKeys*> Kms::app_root(const Admitted& admitted) const {
    DSTACK_TRY(auto epoch, registry_->epoch_for_app(admitted.info.app_id, admitted.decision.key_epoch, keys_));
    const auto* root = keys_.epoch(epoch);
    if (!root) return make_error("key epoch {} does not exist on this KMS (it has 0 to {})", epoch, keys_.epochs.back().epoch);
    return root;
}

asio::awaitable<Result<Reply>> Kms::get_app_key(const Call& call) const {
    auto args = app::decode_get_app_key(call);
    if (!args) co_return std::move(args).take_error();
    if (auto self = co_await ensure_self_allowed(); !self) co_return std::move(self).take_error();
    auto evidence = caller_evidence(call);
    if (!evidence) co_return std::move(evidence).take_error();
    auto admitted = co_await admit(*evidence, false, args->vm_config, app::KmsAuthTarget::app);
    if (!admitted) co_return std::move(admitted).take_error();
    auto root_keys = app_root(*admitted);
    if (!root_keys) co_return std::move(root_keys).take_error();
    const auto* root = *root_keys;
    const auto* info = &admitted->info;
    const auto* decision = &admitted->decision;
    auto keys = app::derive_kms_app_keys(*root, info->app_id, info->instance_id);
    if (!keys) co_return std::move(keys).take_error();

    JsonObject out;
    out.string("ca_cert", root->ca_cert.pem());
    out.hex("disk_crypt_key", keys->disk_crypt_key);
    out.hex("env_crypt_key", keys->env_crypt_key);
    out.hex("k256_key", keys->k256_key);
    out.hex("k256_signature", keys->k256_signature);
    out.string("tproxy_app_id", decision->gateway_app_id);
    out.string("gateway_app_id", decision->gateway_app_id);
    out.hex("os_image_hash", info->os_image_hash);
    out.number("key_epoch", root->epoch);
    metrics_.keys_released++;
    log::info("released the keys of app {} instance {} (epoch {}, compose {})", hex_encode(info->app_id),
              hex_encode(info->instance_id), root->epoch, hex_encode(info->compose_hash));
    co_return out.reply();
}

asio::awaitable<Result<Reply>> Kms::get_app_env_encrypt_pub_key(const Call& call) const {
    auto app_id = app::decode_app_id(call);
    if (!app_id) co_return std::move(app_id).take_error();
    if (auto self = co_await ensure_self_allowed(); !self) co_return std::move(self).take_error();
    // Public: the epoch the app has (or would get), without recording anything.
    auto epoch = registry_->peek_epoch_for_app(*app_id, keys_);
    const auto* root = keys_.epoch(epoch);
    if (!root) co_return make_error("key epoch {} does not exist on this KMS", epoch);
    auto signed_key = app::sign_env_encrypt_public_key(*root, *app_id, static_cast<std::uint64_t>(system_now()));
    if (!signed_key) co_return std::move(signed_key).take_error();
    JsonObject out;
    out.hex("public_key", signed_key->public_key);
    out.hex("signature", signed_key->signature);
    out.number("timestamp", signed_key->timestamp);
    out.hex("signature_v1", signed_key->signature_v1);
    co_return out.reply();
}

asio::awaitable<Result<Reply>> Kms::get_meta(const Call&) const {
    JsonObject out;
    const auto& base = keys_.epochs.front();
    out.string("ca_cert", base.ca_cert.pem());
    bool dev = authorizer_->kind() == "dev";
    out.boolean("allow_any_upgrade", dev);
    out.hex("k256_pubkey", base.k256_key.public_key_compressed());
    rapidjson::Value bootstrap;  // null
    if (keys_.bootstrap_info) {
        JsonObject info;
        info.hex("ca_pubkey", keys_.bootstrap_info->ca_pubkey);
        info.hex("k256_pubkey", keys_.bootstrap_info->k256_pubkey);
        info.hex("attestation", keys_.bootstrap_info->attestation);
        bootstrap.CopyFrom(info.document(), out.allocator());
    }
    out.value("bootstrap_info", std::move(bootstrap));
    out.boolean("is_dev", dev);
    auto info = co_await authorizer_->info();
    auto optional_string = [&](std::string_view name, const std::optional<std::string>& value) {
        if (value) out.string(name, *value);
        else out.value(name, rapidjson::Value());
    };
    if (info) {
        out.string("gateway_app_id", info->gateway_app_id);
        optional_string("kms_contract_address", info->kms_contract_address);
        if (info->chain_id) out.number("chain_id", *info->chain_id);
        else out.value("chain_id", rapidjson::Value());
        optional_string("app_auth_implementation", info->app_implementation);
    } else {
        // Upstream fails GetMeta when its webhook has no info; ours still answers, saying why.
        log::warn("GetMeta: authorization info: {}", info.error().message);
        for (auto name : {"gateway_app_id", "kms_contract_address", "chain_id", "app_auth_implementation"})
            out.value(name, rapidjson::Value());
    }
    // Ours, after upstream's fields.
    out.string("auth_api", authorizer_->kind());
    rapidjson::Value epochs(rapidjson::kArrayType);
    for (const auto& root : keys_.epochs) {
        JsonObject entry;
        entry.number("epoch", root.epoch);
        entry.hex("ca_pubkey", root.ca_key.spki_der());
        entry.hex("k256_pubkey", root.k256_key.public_key_compressed());
        rapidjson::Value copy;
        copy.CopyFrom(entry.document(), out.allocator());
        epochs.PushBack(std::move(copy), out.allocator());
    }
    out.value("key_epochs", std::move(epochs));
    out.boolean("os_image_verified", false);
    co_return out.reply();
}

asio::awaitable<Result<Reply>> Kms::get_kms_key(const Call& call) const {
    auto args = app::decode_get_kms_key(call);
    if (!args) co_return std::move(args).take_error();
    if (auto self = co_await ensure_self_allowed(); !self) co_return std::move(self).take_error();
    auto evidence = caller_evidence(call);
    if (!evidence) co_return std::move(evidence).take_error();
    auto admitted = co_await admit(*evidence, false, args->vm_config, app::KmsAuthTarget::kms);
    if (!admitted) co_return std::move(admitted).take_error();
    const auto* info = &admitted->info;

    JsonObject out;
    out.string("temp_ca_key", keys_.tmp_ca_key.pkcs8_pem());
    rapidjson::Value sets(rapidjson::kArrayType);
    for (const auto& root : keys_.epochs) {
        JsonObject entry;
        entry.string("ca_key", root.ca_key.pkcs8_pem());
        entry.hex("k256_key", root.k256_key.scalar());
        if (args->all_epochs) entry.number("epoch", root.epoch);
        rapidjson::Value copy;
        copy.CopyFrom(entry.document(), out.allocator());
        sets.PushBack(std::move(copy), out.allocator());
        if (!args->all_epochs) break;  // upstream's receivers take exactly one key set: epoch 0
    }
    out.value("keys", std::move(sets));
    metrics_.keys_released++;
    log::warn("handed the root keys ({} epoch(s)) to KMS instance {} (mr_aggregated {})",
              args->all_epochs ? keys_.epochs.size() : 1, hex_encode(info->instance_id), hex_encode(info->mr_aggregated));
    co_return out.reply();
}

asio::awaitable<Result<Reply>> Kms::get_temp_ca_cert(const Call&) const {
    if (auto self = co_await ensure_self_allowed(); !self) co_return std::move(self).take_error();
    JsonObject out;
    out.string("temp_ca_cert", keys_.tmp_ca_cert.pem());
    out.string("temp_ca_key", keys_.tmp_ca_key.pkcs8_pem());
    out.string("ca_cert", keys_.epochs.front().ca_cert.pem());
    co_return out.reply();
}

asio::awaitable<Result<Reply>> Kms::sign_cert(const Call& call) const {
    auto args = app::decode_sign_cert(call);
    if (!args) co_return std::move(args).take_error();
    if (auto self = co_await ensure_self_allowed(); !self) co_return std::move(self).take_error();
    auto request = app::decode_sign_cert_request(args->api_version, args->csr, args->signature);
    if (!request) co_return std::move(request).take_error();
    // The CSR's attestation, bound to the CSR's key; RTMR3 up to boot-mr-done (runtime certificate
    // requests come after more events), without the key provider, as upstream.
    auto admitted = co_await admit(request->evidence, true, args->vm_config, app::KmsAuthTarget::app);
    if (!admitted) co_return std::move(admitted).take_error();
    auto root_keys = app_root(*admitted);
    if (!root_keys) co_return std::move(root_keys).take_error();
    const auto* root = *root_keys;
    const auto* info = &admitted->info;
    const auto& peer = admitted->peer;
    auto now = system_now();
    auto app_ca_key = app::derive_app_ca_key(root->ca_key, info->app_id);
    if (!app_ca_key) co_return std::move(app_ca_key).take_error();
    auto app_ca_pem = app::issue_app_ca_certificate(info->app_id, *app_ca_key, root->ca_key, root->ca_cert, now);
    if (!app_ca_pem) co_return std::move(app_ca_pem).take_error();
    auto app_ca_cert = crypto::Certificate::from_pem(*app_ca_pem);
    if (!app_ca_cert) co_return std::move(app_ca_cert).take_error();
    // The app-info extension carries the full-replay identity (boot_time false), as upstream's.
    Bytes app_info = peer.verdict.app_info ? app::encode_app_info_msgpack(*peer.verdict.app_info) : Bytes{};
    auto leaf = app::issue_app_certificate(*request, info->app_id, app_info, *app_ca_key, *app_ca_cert, now);
    if (!leaf) co_return std::move(leaf).take_error();
    JsonObject out;
    out.string_list("certificate_chain", {*leaf, *app_ca_pem, root->ca_cert.pem()});
    log::info("signed a certificate for app {} ({})", hex_encode(info->app_id), request->csr.config.subject);
    co_return out.reply();
}

std::string Kms::metrics_text() const {
    std::string out;
    auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
        out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
    };
    counter("dstack_kms_attestation_requests_total", "Requests to the methods that verify a caller's attestation.",
            metrics_.attestation_requests.load());
    counter("dstack_kms_attestation_failures_total", "Of those, the ones answered with an error.",
            metrics_.attestation_failures.load());
    counter("dstack_kms_keys_released_total", "Key sets released (app keys and root keys).", metrics_.keys_released.load());
    counter("dstack_kms_authorization_denials_total", "Authorization checks that denied or failed.", metrics_.denials.load());
    out += fmt::format("# HELP dstack_kms_key_epochs Root-key epochs this KMS holds.\n# TYPE dstack_kms_key_epochs gauge\n"
                       "dstack_kms_key_epochs {}\n", keys_.epochs.size());
    out += fmt::format("# HELP dstack_kms_info Build and authorization mode.\n# TYPE dstack_kms_info gauge\n"
                       "dstack_kms_info{{version=\"{}\",auth_api=\"{}\"}} 1\n", version(), authorizer_->kind());
    return out;
}

}  // namespace dstack::applets::kms
