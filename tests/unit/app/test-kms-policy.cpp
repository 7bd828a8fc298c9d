// The built-in policy: auth-simple's allow/deny matrix (kms/auth-simple/index.test.ts), ported with
// real-sized values, our stricter parsing, the reasons that name the rule, and reloading.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "dstack/app/kms-policy-file.hpp"
#include "dstack/app/kms-policy.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"

using namespace dstack;
using app::KmsAuthTarget;

namespace {

const std::string os_image = "1fbb0cf9cc6cfbf23d6b779776fabad2c5403d643badb9e5e238615e4960a78a";
const std::string mr = "abc123" + std::string(58, '0');
const std::string app_id = "0a770123" + std::string(32, '0');
const std::string compose = "c0e456" + std::string(58, '0');
const std::string instance = "1e5789" + std::string(34, '0');
const std::string device = "de0999" + std::string(58, '0');
const std::string other = std::string(64, 'f');

app::BootInfo base_boot() {
    app::BootInfo boot;
    boot.mr_aggregated = *hex_decode(mr);
    boot.os_image_hash = *hex_decode(os_image);
    boot.app_id = *hex_decode(app_id);
    boot.compose_hash = *hex_decode(compose);
    boot.instance_id = *hex_decode(instance);
    boot.device_id = *hex_decode(device);
    boot.tcb_status = "UpToDate";
    return boot;
}

app::KmsPolicy policy_of(const std::string& json) {
    auto policy = app::parse_kms_policy(json);
    REQUIRE_MESSAGE(policy.ok(), (policy.ok() ? std::string() : policy.error().message));
    return *policy;
}

app::KmsAuthDecision decide(const std::string& json, KmsAuthTarget target, const app::BootInfo& boot = base_boot()) {
    return app::evaluate_kms_policy(policy_of(json), boot, target, "p.json");
}

std::string kms_policy(const std::string& kms, const std::string& images = "\"0x" + os_image + "\"") {
    return fmt::format(R"({{"gatewayAppId":"0xgateway","osImages":[{}],"kms":{}}})", images, kms);
}

std::string app_policy(const std::string& apps, const std::string& images = "\"0x" + os_image + "\"") {
    return fmt::format(R"({{"gatewayAppId":"0xgateway","osImages":[{}],"apps":{}}})", images, apps);
}

std::string parse_error(const std::string& json) {
    auto policy = app::parse_kms_policy(json);
    REQUIRE_FALSE(policy.ok());
    return policy.error().message;
}

}  // namespace

TEST_CASE("kms policy: /bootAuth/kms matrix (auth-simple's tests)") {
    auto allowed = decide(kms_policy(fmt::format(R"({{"mrAggregated":["0x{}"],"devices":["0x{}"],"allowAnyDevice":false}})", mr, device)),
                          KmsAuthTarget::kms);
    CHECK(allowed.allowed);
    CHECK(allowed.reason == "");
    CHECK(allowed.gateway_app_id == "0xgateway");
    CHECK_FALSE(allowed.key_epoch.has_value());

    auto any = fmt::format(R"({{"mrAggregated":["0x{}"],"allowAnyDevice":true}})", mr);
    auto boot = base_boot();
    boot.tcb_status = "OutOfDate";
    auto tcb = decide(kms_policy(any), KmsAuthTarget::kms, boot);
    CHECK_FALSE(tcb.allowed);
    CHECK(tcb.reason == R"(policy p.json: tcbStatus "OutOfDate" is not in allowedTcbStatuses ["UpToDate"])");
    CHECK(tcb.gateway_app_id == "0xgateway");  // auth-simple answers it on denials too

    auto image = decide(kms_policy(any, "\"0x" + other + "\""), KmsAuthTarget::kms);
    CHECK_FALSE(image.allowed);
    CHECK(image.reason == "policy p.json: osImageHash " + os_image + " is not in osImages (1 listed)");
    CHECK_FALSE(decide(kms_policy(any, ""), KmsAuthTarget::kms).allowed);

    auto wrong_mr = decide(kms_policy(fmt::format(R"({{"mrAggregated":["{}"],"allowAnyDevice":true}})", other)), KmsAuthTarget::kms);
    CHECK_FALSE(wrong_mr.allowed);
    CHECK(wrong_mr.reason == "policy p.json: mrAggregated " + mr + " is not in kms.mrAggregated (1 listed)");

    auto empty = decide(kms_policy(R"({"mrAggregated":[],"allowAnyDevice":true})"), KmsAuthTarget::kms);
    CHECK_FALSE(empty.allowed);
    CHECK(empty.reason == "policy p.json: mrAggregated " + mr + " is not in kms.mrAggregated (none listed: no KMS may boot)");
    // No kms section at all: the same empty list.
    CHECK_FALSE(decide(R"({"osImages":[")" + os_image + R"("]})", KmsAuthTarget::kms).allowed);

    auto any_device = decide(kms_policy(fmt::format(R"({{"mrAggregated":["{}"],"devices":["{}"],"allowAnyDevice":true}})", mr, other)),
                             KmsAuthTarget::kms);
    CHECK(any_device.allowed);

    auto wrong_device = decide(kms_policy(fmt::format(R"({{"mrAggregated":["{}"],"devices":["{}"]}})", mr, other)), KmsAuthTarget::kms);
    CHECK_FALSE(wrong_device.allowed);
    CHECK(wrong_device.reason ==
          "policy p.json: deviceId " + device + " is not in kms.devices (1 listed; allowAnyDevice is false)");

    // auth-simple's empty-list rule: no device listed means any device, even without allowAnyDevice.
    CHECK(decide(kms_policy(fmt::format(R"({{"mrAggregated":["{}"],"devices":[],"allowAnyDevice":false}})", mr)), KmsAuthTarget::kms).allowed);
}

TEST_CASE("kms policy: TCB statuses and advisories") {
    auto any = fmt::format(R"({{"mrAggregated":["{}"]}})", mr);
    auto boot = base_boot();
    boot.tcb_status = "SWHardeningNeeded";
    boot.advisory_ids = {"INTEL-SA-00837"};
    auto relaxed = fmt::format(R"({{"osImages":["{}"],"kms":{},"allowedTcbStatuses":["UpToDate","SWHardeningNeeded"]}})", os_image, any);
    auto advisory = decide(relaxed, KmsAuthTarget::kms, boot);
    CHECK_FALSE(advisory.allowed);
    CHECK(advisory.reason == R"(policy p.json: advisory "INTEL-SA-00837" is not in allowedAdvisoryIds [])");

    auto listed = fmt::format(R"({{"osImages":["{}"],"kms":{},"allowedTcbStatuses":["UpToDate","SWHardeningNeeded"],)"
                              R"("allowedAdvisoryIds":["INTEL-SA-00837"]}})", os_image, any);
    CHECK(decide(listed, KmsAuthTarget::kms, boot).allowed);
    boot.advisory_ids.push_back("INTEL-SA-00615");
    CHECK_FALSE(decide(listed, KmsAuthTarget::kms, boot).allowed);

    // The TCB rule comes first, for both routes: an app with a perfect entry is still refused.
    boot = base_boot();
    boot.tcb_status = "Revoked";
    auto app = decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"]}}}})", app_id, compose)), KmsAuthTarget::app, boot);
    CHECK_FALSE(app.allowed);
    CHECK(app.reason.find("tcbStatus \"Revoked\"") != std::string::npos);
    // An empty allowedTcbStatuses allows no status at all.
    CHECK_FALSE(decide(fmt::format(R"({{"osImages":["{}"],"kms":{},"allowedTcbStatuses":[]}})", os_image, any), KmsAuthTarget::kms).allowed);
}

TEST_CASE("kms policy: /bootAuth/app matrix (auth-simple's tests)") {
    auto valid = decide(app_policy(fmt::format(R"({{"0x{}":{{"composeHashes":["0x{}"],"devices":["0x{}"],"allowAnyDevice":false}}}})",
                                               app_id, compose, device)),
                        KmsAuthTarget::app);
    CHECK(valid.allowed);
    CHECK(valid.reason == "");
    CHECK(valid.gateway_app_id == "0xgateway");

    auto unregistered = decide(app_policy("{}"), KmsAuthTarget::app);
    CHECK_FALSE(unregistered.allowed);
    CHECK(unregistered.reason == "policy p.json: app " + app_id + " is not in apps (not registered)");

    auto wrong_compose = decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"allowAnyDevice":true}}}})", app_id, other)),
                                KmsAuthTarget::app);
    CHECK_FALSE(wrong_compose.allowed);
    CHECK(wrong_compose.reason ==
          "policy p.json: composeHash " + compose + " is not in apps." + app_id + ".composeHashes (1 listed)");
    // An app listed without compose hashes may not boot.
    CHECK_FALSE(decide(app_policy(fmt::format(R"({{"{}":{{}}}})", app_id)), KmsAuthTarget::app).allowed);

    auto wrong_device = decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"devices":["{}"],"allowAnyDevice":false}}}})",
                                                      app_id, compose, other)),
                               KmsAuthTarget::app);
    CHECK_FALSE(wrong_device.allowed);
    CHECK(wrong_device.reason == "policy p.json: deviceId " + device + " is not in apps." + app_id +
                                     ".devices (1 listed; allowAnyDevice is false)");

    CHECK(decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"devices":[],"allowAnyDevice":true}}}})", app_id, compose)),
                 KmsAuthTarget::app).allowed);
    CHECK(decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"devices":[]}}}})", app_id, compose)),
                 KmsAuthTarget::app).allowed);

    // The routes use their own sections: an app entry does not let a KMS boot, nor the reverse.
    auto both = fmt::format(R"({{"osImages":["{}"],"kms":{{"mrAggregated":["{}"]}}}})", os_image, mr);
    CHECK(decide(both, KmsAuthTarget::kms).allowed);
    CHECK_FALSE(decide(both, KmsAuthTarget::app).allowed);
    CHECK_FALSE(decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"]}}}})", app_id, compose)), KmsAuthTarget::kms).allowed);
}

TEST_CASE("kms policy: hex in either case, with or without 0x (auth-simple's tests)") {
    auto upper = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return s;
    };
    CHECK(decide(app_policy(fmt::format(R"({{"0x{}":{{"composeHashes":["0x{}"],"allowAnyDevice":true}}}})", upper(app_id), upper(compose)),
                            "\"0x" + upper(os_image) + "\""),
                 KmsAuthTarget::app).allowed);
    CHECK(decide(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"allowAnyDevice":true}}}})", app_id, compose),
                            "\"" + os_image + "\""),
                 KmsAuthTarget::app).allowed);
    CHECK(decide(app_policy(fmt::format(R"({{"0X{}":{{"composeHashes":["0X{}"]}}}})", app_id, upper(compose))), KmsAuthTarget::app).allowed);
}

TEST_CASE("kms policy: key epochs, info and defaults") {
    auto policy = policy_of(app_policy(fmt::format(R"({{"{}":{{"composeHashes":["{}"],"keyEpoch":3}}}})", app_id, compose)));
    auto decision = app::evaluate_kms_policy(policy, base_boot(), KmsAuthTarget::app, "p.json");
    REQUIRE(decision.allowed);
    REQUIRE(decision.key_epoch.has_value());
    CHECK(*decision.key_epoch == 3);

    auto defaults = policy_of("{}");
    CHECK(defaults.allowed_tcb_statuses == std::vector<std::string>{"UpToDate"});
    CHECK(defaults.gateway_app_id == "");
    auto info = app::kms_policy_info(defaults);
    CHECK(info.kms_contract_address == "0x0000000000000000000000000000000000000000");
    CHECK(info.chain_id == 0u);
    CHECK(info.app_implementation == "0x0000000000000000000000000000000000000000");
    CHECK_FALSE(info.eth_rpc_url.has_value());
    // Nothing is allowed by an empty policy.
    CHECK_FALSE(app::evaluate_kms_policy(defaults, base_boot(), KmsAuthTarget::kms, "p").allowed);
    CHECK_FALSE(app::evaluate_kms_policy(defaults, base_boot(), KmsAuthTarget::app, "p").allowed);

    auto full = app::kms_policy_info(policy_of(R"({"gatewayAppId":"gw","kmsContractAddr":"0xk","chainId":1337,)"
                                               R"("appImplementation":"0xi","ethRpcUrl":"http://rpc"})"));
    CHECK(full.gateway_app_id == "gw");
    CHECK(full.kms_contract_address == "0xk");
    CHECK(full.chain_id == 1337u);
    CHECK(full.app_implementation == "0xi");
    CHECK(full.eth_rpc_url == "http://rpc");
}

TEST_CASE("kms policy: strict parsing names what is wrong") {
    CHECK(parse_error(R"({"osImages":[],"osImages":[]})") == "$: duplicate key 'osImages'");
    CHECK(parse_error(R"({"allowedTcbStatus":["UpToDate"]})").find("$.allowedTcbStatus: unknown key") == 0);
    CHECK(parse_error(R"({"kms":{"allowAnyDevices":true}})").find("$.kms.allowAnyDevices: unknown key") == 0);
    CHECK(parse_error(R"({"kms":{"allowAnyDevice":"yes"}})") == "$.kms.allowAnyDevice: expected a boolean, got a string");
    CHECK(parse_error(R"({"osImages":"00"})").find("$.osImages: expected an array") == 0);
    CHECK(parse_error(R"({"osImages":["00"]})") == "$.osImages[0]: expected 32 bytes, got 1");
    CHECK(parse_error(R"({"osImages":["xyz"]})").find("$.osImages[0]") == 0);
    CHECK(parse_error(R"({"chainId":-1})").find("$.chainId") == 0);
    CHECK(parse_error(R"({"allowedTcbStatuses":[1]})").find("$.allowedTcbStatuses[0]: expected a string") == 0);
    CHECK(parse_error(R"({"apps":{"0xapp123":{}}})").find(R"($.apps["0xapp123"]: the key must be a 20-byte app id)") == 0);
    CHECK(parse_error(fmt::format(R"({{"apps":{{"{}":{{"composeHashes":["{}"],"extra":1}}}}}})", app_id, compose))
              .find("$.apps[\"" + app_id + "\"].extra: unknown key") == 0);
    CHECK(parse_error(fmt::format(R"({{"apps":{{"{}":{{"keyEpoch":1.5}}}}}})", app_id)).find(".keyEpoch") != std::string::npos);
    CHECK(parse_error(fmt::format(R"({{"apps":{{"0x{}":{{}},"{}":{{}}}}}})", app_id, app_id)) ==
          "$.apps: app " + app_id + " is listed twice (app ids are compared ignoring case and 0x)");
    CHECK(parse_error("[]").find("$: expected an object") == 0);
    CHECK(parse_error("{").find("not valid JSON") == 0);
    std::string huge = R"({"gatewayAppId":")" + std::string(app::max_kms_policy_bytes, 'a') + R"("})";
    CHECK(parse_error(huge).find("exceeds the 1048576-byte limit") != std::string::npos);
}

namespace {

struct PolicyDir {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("dstack-policy-test-{}", ::getpid());
    std::filesystem::path file = dir / "policy.json";
    PolicyDir() { std::filesystem::create_directories(dir); }
    ~PolicyDir() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    void write(const std::string& text) { REQUIRE(write_file_atomic(file, as_bytes(text)).ok()); }
};

}  // namespace

TEST_CASE("kms policy: the file is reloaded when it changes; a bad new file keeps the old policy") {
    PolicyDir d;
    auto missing = app::KmsPolicyFile::open(d.file);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("policy " + d.file.string() + ": ") == 0);

    d.write(R"({"gatewayAppId":"first"})");
    auto opened = app::KmsPolicyFile::open(d.file);
    REQUIRE(opened.ok());
    auto& file = **opened;
    CHECK(file.current()->gateway_app_id == "first");

    d.write("{ garbage");
    CHECK(file.current()->gateway_app_id == "first");
    CHECK(file.current()->gateway_app_id == "first");  // the same bad file: not re-read, still the old policy

    d.write(R"({"gatewayAppId":"second"})");
    CHECK(file.current()->gateway_app_id == "second");

    d.write(R"({"gatewayAppId":"third","unknown":1})");  // valid JSON, invalid policy
    CHECK(file.current()->gateway_app_id == "second");

    std::filesystem::remove(d.file);
    CHECK(file.current()->gateway_app_id == "second");

    // Rewritten in place (same inode), with a different size.
    {
        std::ofstream out(d.file, std::ios::trunc);
        out << R"({"gatewayAppId":"fourth!"})";
    }
    CHECK(file.current()->gateway_app_id == "fourth!");

    auto invalid_at_start = app::KmsPolicyFile::open(d.dir);  // a directory
    REQUIRE_FALSE(invalid_at_start.ok());
    CHECK(invalid_at_start.error().message.find("policy " + d.dir.string()) == 0);
}

TEST_CASE("kms policy: a complete policy file (the fuzz target's seed) loads with every field") {
    auto loaded = app::load_kms_policy(std::filesystem::path(DSTACK_SOURCE_ROOT) / "tests/fuzz/seeds/fuzz-kms-policy/full.json");
    REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? std::string() : loaded.error().message));
    const auto& policy = *loaded;
    CHECK(policy.gateway_app_id == "0x1111111111111111111111111111111111111111");
    CHECK(policy.chain_id == 1337u);
    CHECK(policy.eth_rpc_url == "http://127.0.0.1:8545");
    CHECK(policy.allowed_tcb_statuses == std::vector<std::string>{"UpToDate", "SWHardeningNeeded"});
    CHECK(policy.allowed_advisory_ids == std::vector<std::string>{"INTEL-SA-00837"});
    REQUIRE(policy.os_images.size() == 1);
    CHECK(hex_encode(policy.os_images[0]) == os_image);
    REQUIRE(policy.kms_mr_aggregated.size() == 1);
    CHECK(policy.kms_device.devices.empty());
    REQUIRE(policy.apps.size() == 1);
    CHECK(hex_encode(policy.apps[0].app_id) == app_id);
    CHECK(hex_encode(policy.apps[0].compose_hashes.at(0)) == compose);
    CHECK(policy.apps[0].key_epoch == std::optional<std::uint64_t>(2));
    auto boot = base_boot();
    boot.tcb_status = "SWHardeningNeeded";
    boot.advisory_ids = {"INTEL-SA-00837"};
    auto decision = app::evaluate_kms_policy(policy, boot, KmsAuthTarget::app, "full.json");
    CHECK(decision.allowed);
    CHECK(decision.key_epoch == std::optional<std::uint64_t>(2));
    CHECK(app::evaluate_kms_policy(policy, boot, KmsAuthTarget::kms, "full.json").allowed);
}
