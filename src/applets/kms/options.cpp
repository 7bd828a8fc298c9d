#include "options.hpp"

#include <cstdlib>

#include <CLI/CLI.hpp>

#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::applets::kms {
namespace {

Result<void> read_bool(const Config& file, std::string_view key, bool& target) {
    DSTACK_TRY(auto value, file.get_bool(key));
    if (value) target = *value;
    return {};
}

}  // namespace

ServerOptions::ServerOptions(Command& command, Settings& settings) : settings_(settings), config_(command.cli()) {
    auto& cli = command.cli();
    config_.bind("core.cert_dir", cli.add_option("--cert-dir", settings.cert_dir));
    cli.add_option("--agent", settings.agent_address);
    config_.bind("core.attestation.urls.pccs", cli.add_option("--pccs", settings.pccs_url));
    cli.add_option("--collateral", settings.collateral_file);
    config_.bind("core.attestation.cache_dir", cli.add_option("--collateral-cache", settings.collateral_cache_dir));
    cli.add_option("--trust-root", trust_root_);
    cli.add_option("--allow-tcb-status", allow_status_);
    cli.add_option("--auth", auth_type_)->check(CLI::IsMember({"webhook", "policy", "dev"}));
    config_.bind("core.auth_api.webhook.url", cli.add_option("--auth-webhook", settings.webhook_url));
    config_.bind("core.auth_api.policy.file", cli.add_option("--auth-policy", settings.policy_file));
    cli.add_option("--auth-timeout", webhook_timeout_s_);
    config_.bind("core.auth_api.dev.gateway_app_id", cli.add_option("--gateway-app-id", settings.dev_gateway_app_id));
    cli.add_flag("--insecure-dev-auth", settings.insecure_dev_auth);
    cli.add_flag("--no-self-authorization", no_self_authorization_);
    cli.add_flag("--no-attest-rpc-cert", no_attest_rpc_cert_);
    cli.add_option("--listen", settings.rpc_address);
    cli.add_option("--admin-listen", settings.admin_address);
    cli.add_option("--admin-token-file", admin_token_file_);
    cli.add_option("--onboard-listen", settings.onboard_address);
    config_.bind("core.onboard.auto_bootstrap_domain", cli.add_option("--auto-bootstrap", settings.auto_bootstrap_domain));
    config_.bind("core.site_name", cli.add_option("--site-name", settings.site_name));
    cli.add_option("--threads", settings.threads);
    for (auto key : {"rpc.address", "rpc.port", "core.enforce_self_authorization", "core.attest_rpc_cert",
                     "core.attestation.insecure_allow_external_trust_anchors", "core.attestation.root_ca.tdx",
                     "core.attestation.collateral_file", "core.attestation.allowed_tcb_statuses", "core.auth_api.type",
                     "core.auth_api.webhook.timeout_secs", "core.admin.enabled", "core.admin.address", "core.admin.port",
                     "core.admin.auth_token", "core.admin.insecure_no_auth", "core.metrics.enabled", "core.onboard.enabled",
                     "core.onboard.address", "core.onboard.port", "core.image.verify", "core.image.cache_dir"}) {
        config_.accept(key);
    }
    config_.accept_unused("rpc.tls.key", "the RPC key is always cert_dir/rpc.key");
    config_.accept_unused("rpc.tls.certs", "the RPC certificate is always cert_dir/rpc.crt");
    config_.accept_unused("rpc.tls.mutual.ca_certs", "client certificates are checked against cert_dir/tmp-ca.crt");
    config_.accept_unused("rpc.tls.mutual.mandatory", "client certificates are optional at the TLS layer, required by the "
                                                      "methods that release keys");
    for (auto key : {"workers", "max_blocking", "ident", "temp_dir", "keep_alive", "log_level", "limits.*"}) {
        config_.accept_unused(fmt::format("default.{}", key), "Rocket's settings; see --threads and --log-level");
    }
    config_.accept_unused("core.subject_postfix", "unused upstream too");
    config_.accept_unused("core.image.download_url", "OS images are not verified by this build");
    config_.accept_unused("core.image.download_timeout", "OS images are not verified by this build");
    config_.accept_unused("core.attestation.urls.amd_kds", "TDX only");
    config_.accept_unused("core.sev_snp_key_release", "TDX only: other TEEs are never released keys");
    config_.accept_unused("core.aws_nitro_tpm_key_release", "TDX only: other TEEs are never released keys");
}

Result<void> ServerOptions::apply() {
    DSTACK_CHECK(config_.apply());
    bool external_anchors = false;
    if (const Config* file = config_.config()) {
        DSTACK_TRY(auto rpc, config_address(*file, "rpc"));
        if (rpc && settings_.rpc_address == "0.0.0.0:8000") settings_.rpc_address = *rpc;
        DSTACK_CHECK(read_bool(*file, "core.enforce_self_authorization", settings_.enforce_self_authorization));
        DSTACK_CHECK(read_bool(*file, "core.attest_rpc_cert", settings_.attest_rpc_cert));
        DSTACK_CHECK(read_bool(*file, "core.attestation.insecure_allow_external_trust_anchors", external_anchors));
        DSTACK_TRY(auto root, file->get_string("core.attestation.root_ca.tdx"));
        if (root && !trust_root_) {
            if (!external_anchors) {
                return make_error("{}: core.attestation.root_ca.tdx needs core.attestation.insecure_allow_external_trust_anchors "
                                  "= true (a trust anchor other than Intel's accepts quotes Intel never signed)",
                                  file->origin());
            }
            trust_root_ = *root;
        }
        DSTACK_TRY(auto collateral, file->get_string("core.attestation.collateral_file"));
        if (collateral && !settings_.collateral_file) settings_.collateral_file = *collateral;
        DSTACK_TRY(auto statuses, file->get_string_array("core.attestation.allowed_tcb_statuses"));
        if (statuses && allow_status_.empty()) allow_status_ = *statuses;
        DSTACK_TRY(auto type, file->get_string("core.auth_api.type"));
        if (type && !auth_type_) auth_type_ = *type;
        DSTACK_TRY(auto timeout, file->get_int("core.auth_api.webhook.timeout_secs"));
        if (timeout) webhook_timeout_s_ = static_cast<int>(*timeout);
        bool admin = false;
        DSTACK_CHECK(read_bool(*file, "core.admin.enabled", admin));
        DSTACK_TRY(auto admin_address, config_address(*file, "core.admin"));
        if (admin && settings_.admin_address.empty()) settings_.admin_address = admin_address.value_or("127.0.0.1:8001");
        DSTACK_TRY(auto token, file->get_string("core.admin.auth_token"));
        if (token && !token->empty()) settings_.admin_token = *token;
        DSTACK_CHECK(read_bool(*file, "core.admin.insecure_no_auth", settings_.admin_insecure_no_auth));
        DSTACK_CHECK(read_bool(*file, "core.metrics.enabled", settings_.metrics_enabled));
        DSTACK_CHECK(read_bool(*file, "core.onboard.enabled", settings_.onboard_enabled));
        DSTACK_TRY(auto onboard_address, config_address(*file, "core.onboard"));
        if (onboard_address && settings_.onboard_address == "0.0.0.0:8000") settings_.onboard_address = *onboard_address;
        DSTACK_CHECK(read_bool(*file, "core.image.verify", settings_.image_verify_requested));
        DSTACK_TRY(auto cache_dir, file->get_string("core.image.cache_dir"));
        if (cache_dir) settings_.image_cache_dir = *cache_dir;
    }
    if (no_self_authorization_) settings_.enforce_self_authorization = false;
    if (no_attest_rpc_cert_) settings_.attest_rpc_cert = false;
    if (auth_type_) settings_.auth_type = *auth_type_;
    if (settings_.auth_type != "webhook" && settings_.auth_type != "policy" && settings_.auth_type != "dev")
        return make_error("core.auth_api.type '{}': webhook, policy or dev", settings_.auth_type);
    if (settings_.auth_type == "dev" && !settings_.insecure_dev_auth) {
        return make_error("the dev authorization API allows every app and every KMS: it needs --insecure-dev-auth on the "
                          "command line (never in production)");
    }
    if (settings_.auth_type == "policy" && settings_.policy_file.empty())
        return make_error("--auth policy needs --auth-policy FILE (core.auth_api.policy.file)");
    if (webhook_timeout_s_ < 1 || webhook_timeout_s_ > 300) return make_error("--auth-timeout: 1 to 300 seconds");
    settings_.webhook_timeout = std::chrono::seconds(webhook_timeout_s_);
    if (!allow_status_.empty()) settings_.allowed_tcb_statuses = allow_status_;
    for (const auto& name : settings_.allowed_tcb_statuses) {
        auto status = tee::parse_tcb_status(name);
        if (!status) return make_error("--allow-tcb-status: unknown TCB status '{}'", name);
        if (*status == tee::TcbStatus::revoked) return make_error("--allow-tcb-status: Revoked can never be accepted");
    }
    settings_.trust_root = trust_root_;
    if (settings_.collateral_file && settings_.pccs_url) return make_error("give --collateral or --pccs, not both");
    if (!admin_token_file_.empty()) {
        DSTACK_TRY(auto token, read_text_file(admin_token_file_, 4096));
        while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
        settings_.admin_token = token;
    }
    if (settings_.admin_token.empty()) {
        for (auto name : {"DSTACK_KMS_ADMIN_TOKEN", "ADMIN_API_TOKEN"}) {
            if (const char* env = std::getenv(name); env && *env) {
                settings_.admin_token = env;
                break;
            }
        }
    }
    if (!settings_.admin_address.empty() && settings_.admin_token.empty() && !settings_.admin_insecure_no_auth) {
        return make_error("the admin listener needs a token (--admin-token-file, core.admin.auth_token or "
                          "$DSTACK_KMS_ADMIN_TOKEN), or core.admin.insecure_no_auth = true");
    }
    if (settings_.threads < 1 || settings_.threads > 64) return make_error("--threads: 1 to 64");
    return {};
}

Result<std::shared_ptr<app::Verifier>> make_verifier(const Settings& settings) {
    app::VerifierConfig config;
    config.collateral.file = settings.collateral_file;
    config.collateral.pccs_url = settings.pccs_url;
    config.collateral.cache_dir = settings.collateral_cache_dir;
    config.policy.allowed_statuses.clear();
    for (const auto& name : settings.allowed_tcb_statuses) config.policy.allowed_statuses.push_back(*tee::parse_tcb_status(name));
    // Advisories are the authorization policy's to judge (auth-simple's allowedAdvisoryIds).
    config.policy.allowed_advisories = {"*"};
    config.policy.allow_debug = false;
    if (settings.trust_root) {
        auto bytes = read_file(*settings.trust_root, 64 * 1024);
        if (!bytes) return std::move(bytes).take_error().context("trust root");
        auto text = as_chars(*bytes);
        auto root = text.find("-----BEGIN") != std::string_view::npos ? crypto::Certificate::from_pem(text)
                                                                       : crypto::Certificate::from_der(*bytes);
        if (!root) return std::move(root).take_error().context(fmt::format("trust root {}", *settings.trust_root));
        if (!root->is_ca()) return make_error("trust root {}: not a CA certificate", *settings.trust_root);
        config.trust_anchor = std::move(*root);
        log::warn("quotes are verified against {} instead of Intel's root: a simulated TEE is trusted", *settings.trust_root);
    }
    return app::Verifier::create(std::move(config));
}

Result<std::shared_ptr<app::KmsAuthorizer>> make_authorizer(const Settings& settings) {
    if (settings.auth_type == "dev") return std::shared_ptr<app::KmsAuthorizer>(app::make_dev_authorizer(settings.dev_gateway_app_id));
    if (settings.auth_type == "policy") {
        DSTACK_TRY(auto policy, app::make_policy_authorizer(settings.policy_file));
        return std::shared_ptr<app::KmsAuthorizer>(std::move(policy));
    }
    app::WebhookOptions options;
    options.url = settings.webhook_url;
    options.timeout = settings.webhook_timeout;
    DSTACK_TRY(auto webhook, app::make_webhook_authorizer(std::move(options)));
    return std::shared_ptr<app::KmsAuthorizer>(std::move(webhook));
}

}  // namespace dstack::applets::kms
