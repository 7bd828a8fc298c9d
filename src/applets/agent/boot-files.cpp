#include "boot-files.hpp"

#include <sys/stat.h>

#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"
#include "event-log-forms.hpp"

namespace dstack::applets::agent {

namespace {

template <typename Parse>
auto parse_file(const std::filesystem::path& path, std::size_t limit, Parse parse, std::string* text_out = nullptr)
    -> decltype(parse(std::string_view{})) {
    auto text = read_text_file(path, limit);
    if (!text) return std::move(text).take_error();
    auto parsed = parse(*text);
    if (!parsed) return std::move(parsed).take_error().context(path.string());
    if (text_out) *text_out = std::move(*text);
    return parsed;
}

Result<void> write_default(const std::filesystem::path& path, std::string_view content, unsigned mode = 0644) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) return {};
    DSTACK_CHECK(write_file_atomic(path, as_bytes(content), mode));
    log::info("simulator: wrote {}", path.string());
    return {};
}

// A fixed, recognisable OS image hash for the simulated VM.
std::string simulator_os_image_hash() { return hex_encode(crypto::sha256(as_bytes(std::string_view("dstack simulator os image")))); }

}  // namespace

Result<BootFiles> load_boot_files(const BootFilePaths& paths) {
    BootFiles files;
    DSTACK_TRY(files.compose, parse_file(paths.compose, app::max_app_compose_size, app::parse_app_compose, &files.compose_text));
    DSTACK_TRY(files.sys_config,
               parse_file(paths.sys_config, app::max_sys_config_size, app::parse_sys_config, &files.sys_config_text));
    DSTACK_TRY(files.keys, parse_file(paths.keys, app::max_app_keys_size, app::parse_app_keys));
    std::error_code ec;
    if (!paths.instance_info.empty() && std::filesystem::exists(paths.instance_info, ec)) {
        DSTACK_TRY(auto instance, parse_file(paths.instance_info, app::max_instance_info_size, app::parse_instance_info));
        files.instance = std::move(instance);
    }
    return files;
}

Result<BootFilePaths> prepare_simulator_dir(const std::filesystem::path& dir, tee::Attester* attester) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error("{}: {}", dir.string(), ec.message());
    BootFilePaths paths;
    paths.compose = dir / "app-compose.json";
    paths.sys_config = dir / "sys-config.json";
    paths.keys = dir / "appkeys.json";
    paths.instance_info = dir / "instance_info.json";

    DSTACK_CHECK(write_default(paths.compose, R"({
  "manifest_version": 2,
  "name": "dstack-simulator",
  "runner": "docker-compose",
  "docker_compose_file": "services: {}\n",
  "kms_enabled": false,
  "gateway_enabled": false,
  "local_key_provider_enabled": false,
  "key_provider": "none",
  "public_logs": true,
  "public_sysinfo": true,
  "public_tcbinfo": true,
  "no_instance_id": false
}
)"));
    auto vm_config = fmt::format(R"({{"os_image_hash":"{}","cpu_count":2,"memory_size":2147483648,"image":"dstack-simulator"}})",
                                 simulator_os_image_hash());
    std::string quoted;
    for (char c : vm_config) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    DSTACK_CHECK(write_default(paths.sys_config, fmt::format(R"({{
  "kms_urls": [],
  "gateway_urls": [],
  "pccs_url": "",
  "docker_registry": "",
  "host_api_url": "",
  "vm_config": "{}"
}}
)", quoted)));
    auto seed = crypto::random_bytes(20);
    DSTACK_CHECK(write_default(paths.instance_info,
                               fmt::format(R"({{"instance_id_seed":"{}","instance_id":"","app_id":""}})" "\n", hex_encode(seed))));
    if (!std::filesystem::exists(paths.keys, ec)) {
        app::AttestFunction attest;
        if (attester) {
            attest = [attester](const app::ReportData& report_data) -> Result<Bytes> {
                tee::Fixed<64> fixed{};
                std::copy(report_data.begin(), report_data.end(), fixed.begin());
                DSTACK_TRY(auto attested, attester->attest(fixed));
                return versioned_attestation(attested, certificate_event_log(attested), "");
            };
        }
        auto key_seed = crypto::random_bytes(32);
        DSTACK_TRY(auto keys, app::generate_app_keys_from_seed(key_seed, app::KeyProvider::Kind::none, {}, attest, system_now()));
        DSTACK_CHECK(write_file_atomic(paths.keys, as_bytes(app::app_keys_to_json(keys)), 0600));
        log::info("simulator: generated app keys in {}", paths.keys.string());
    }
    return paths;
}

Result<void> emit_boot_events_once(const BootFiles& files, tee::Attester& attester) {
    DSTACK_TRY(auto existing, attester.runtime_events());
    if (!existing.empty()) return {};
    DSTACK_TRY(auto version, attester.set_event_version(files.compose.event_log_version));
    (void)version;
    DSTACK_TRY(auto events, boot_events_for(files));
    for (const auto& event : events) DSTACK_CHECK(attester.emit(event.name, event.payload));
    log::info("simulator: measured {} boot events into RTMR3", events.size());
    return {};
}

}  // namespace dstack::applets::agent
