// applet: agent — its usage text below is also its --help.
#include <algorithm>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent.hpp"
#include "boot-files.hpp"
#include "dstack/base/file-lock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"
#include "dstack/tee/sim-platform.hpp"
#include "dstack/tee/tdx-platform.hpp"
#include "services.hpp"
#include "support/command-line.hpp"
#include "support/daemon-options.hpp"
#include "support/daemon.hpp"

namespace dstack::applets {
namespace {

constexpr std::string_view usage = R"(usage: dstack agent [OPTIONS]
       dstack agent --simulator DIR [--fixture attestation.bin]

The guest agent that runs inside each CVM: it serves the dstack API on
/var/run/dstack.sock (GetKey, GetTlsKey, GetQuote, Attest, Info, Sign, Verify,
Version, EmitEvent, GpuInfo), the legacy Tappd API on /var/run/tappd.sock, the
Worker API, /metrics and an info page on the external listener, and GuestApi
for the VMM on vsock port 8000.

Simulator for app developers:
  --simulator DIR      serve DIR/dstack.sock, DIR/tappd.sock, DIR/external.sock
                       and DIR/guest.sock with the simulated TEE (state in
                       DIR/tee). First start writes app-compose.json,
                       sys-config.json, instance_info.json and appkeys.json (an
                       upstream appkeys.json put there is used as it is). Each
                       start is a boot of the simulated CVM: keys, MRTD and
                       RTMR0-2 persist; RTMR3 and the runtime log start over and
                       the boot events are measured again. Point an SDK at it with
                         export DSTACK_SIMULATOR_ENDPOINT=DIR/dstack.sock
                       (TAPPD_SIMULATOR_ENDPOINT=DIR/tappd.sock for Tappd), and
                       verify its quotes with
                         dstack verify --trust-root DIR/tee/root.pem \
                           --collateral DIR/tee/collateral.json quote.json
  --fixture FILE       with --simulator: answer from upstream's attestation.bin
                       as upstream's simulator does (report data patched into
                       the fixture quote, whose signature then does not verify)

TEE:
  --tee auto|tdx|sim   auto (default): tdx when /dev/tdx_guest or configfs-tsm
                       is there; sim: the simulated TEE (state in --sim-state)
  --sim-state DIR      the simulated TEE's state (default /var/lib/dstack/sim-tee)
  --runtime-log-dir D  the runtime event log (default /run/log/dstack)

Boot files (default: /dstack/.host-shared/...):
  --compose-file F     app-compose.json
  --sys-config-file F  .sys-config.json
  --keys-file F        .appkeys.json
  --instance-info F    .instance_info (optional)

Listeners (ADDR: unix:/path, HOST:PORT, vsock:CID:PORT, systemd:N, or none):
  --dstack-socket A    default unix:/var/run/dstack.sock (systemd:0 when socket-activated)
  --tappd-socket A     default unix:/var/run/tappd.sock (systemd:1 when socket-activated)
  --external A         default 0.0.0.0:8090
  --guest-api A        default vsock:any:8000
  Unix sockets are created with mode 0777, as upstream's: any local process may
  ask for the app's keys.

Other:
  --data-disk PATH     a mount point SysInfo reports (repeatable; default /)
  --legacy-cert-extensions
                       RA-TLS certificates also carry the quote (1.1) and event
                       log (1.2) extensions, for verifiers that read only those
  --threads N          worker threads (default 4)
  --config FILE        upstream's dstack.toml: [default.core] keys_file,
                       compose_file, sys_config_file, data_disks,
                       [default.core.simulator] attestation_file, [internal]
                       address, [internal-v0] address, [external] address/port,
                       [guest-api] address/port; command-line flags win
  --log-level LEVEL, --log-format text|json
)";

struct AgentArgs {
    std::string simulator;
    std::string fixture;
    std::string tee = "auto";
    std::string sim_state = "/var/lib/dstack/sim-tee";
    std::string runtime_log_dir = std::string(tee::default_runtime_log_dir);
    agent::BootFilePaths paths;
    std::string compose_file, sys_config_file, keys_file, instance_info;
    std::string dstack_socket, tappd_socket, external, guest_api;
    std::vector<std::string> data_disks;
    bool legacy_cert_extensions = false;
    int threads = 4;
    LoggingOptions logging;
};

// Upstream writes "unix:./x.sock" addresses, and TCP and vsock ones as a host (or vsock:CID) with
// a separate port; an address without a port key is taken as it is.
Result<std::string> upstream_address(const Config& file, const std::string& table) {
    DSTACK_TRY(auto address, file.get_string(table + ".address"));
    DSTACK_TRY(auto port, file.get_int(table + ".port"));
    if (!address) {
        if (port) return make_error("{}: [{}] has a port but no address", file.origin(), table);
        return std::string();
    }
    std::string text = *address;
    if (text.rfind("unix:", 0) == 0) {
        if (port) return make_error("{}: [{}] port does not apply to a unix socket address", file.origin(), table);
        return text + "?mode=0777";
    }
    if (!port) return text;
    if (text.rfind("vsock:", 0) == 0) {
        auto cid = text.substr(6);
        if (cid.find(':') != std::string::npos)
            return make_error("{}: [{}] address '{}' already has a port; drop the port key", file.origin(), table, text);
        if (*port < 0 || *port > 0xffffffffLL) return make_error("{}: [{}] port {} is not a vsock port", file.origin(), table, *port);
        if (cid == "0xffffffff" || cid == "4294967295" || cid == "-1") cid = "any";
        return fmt::format("vsock:{}:{}", cid, *port);
    }
    if (*port < 0 || *port > 65535) return make_error("{}: [{}] port {} is not 0 to 65535", file.origin(), table, *port);
    auto colons = std::count(text.begin(), text.end(), ':');
    bool ipv6 = colons > 1 && text.front() != '[';  // a bare IPv6 literal
    if (colons == 1 || (text.front() == '[' && text.find("]:") != std::string::npos))
        return make_error("{}: [{}] address '{}' already has a port; drop the port key", file.origin(), table, text);
    return ipv6 ? fmt::format("[{}]:{}", text, *port) : fmt::format("{}:{}", text, *port);
}

std::string with_mode(std::string address) {
    if (address.rfind("unix:", 0) == 0 && address.find("?mode=") == std::string::npos) address += "?mode=0777";
    return address;
}

bool socket_activated() { return std::getenv("LISTEN_FDS") != nullptr; }

// The agent's largest request is Sign's 1 MiB of data (2 MiB of hex). On its local sockets every
// app of a CVM is the same uid, so a per-client cap would let one app's idle connections lock the
// others out; there the server's eviction of idle and stalled connections protects instead.
net::http::ServerOptions server_options(std::string_view address) {
    net::http::ServerOptions options;
    options.limits.max_body_bytes = 4 * 1024 * 1024;
    bool local = address.rfind("unix:", 0) == 0 || address.rfind("systemd", 0) == 0 || address.rfind("vsock:", 0) == 0;
    if (local) {
        options.max_connections_per_address = 0;
        // Local clients write their header at once; one still arriving after a second is a client
        // holding places, closed when the server is full.
        options.evict_stalled_headers_after = std::chrono::seconds(1);
    }
    return options;
}

}  // namespace

int agent_main(int argc, char** argv) {
    AgentArgs args;
    Command command("dstack agent", usage, "dstack agent --help");
    auto& cli = command.cli();
    cli.add_option("--simulator", args.simulator);
    cli.add_option("--fixture", args.fixture);
    cli.add_option("--tee", args.tee)->check(CLI::IsMember({"auto", "tdx", "sim"}));
    cli.add_option("--sim-state", args.sim_state);
    cli.add_option("--runtime-log-dir", args.runtime_log_dir);
    cli.add_option("--compose-file", args.compose_file);
    cli.add_option("--sys-config-file", args.sys_config_file);
    cli.add_option("--keys-file", args.keys_file);
    cli.add_option("--instance-info", args.instance_info);
    cli.add_option("--dstack-socket", args.dstack_socket);
    cli.add_option("--tappd-socket", args.tappd_socket);
    cli.add_option("--external", args.external);
    cli.add_option("--guest-api", args.guest_api);
    cli.add_option("--data-disk", args.data_disks);
    cli.add_flag("--legacy-cert-extensions", args.legacy_cert_extensions);
    cli.add_option("--threads", args.threads);
    add_logging_options(cli, args.logging);
    ConfigOptions config(cli);
    config.bind("default.core.keys_file", cli.get_option("--keys-file"));
    config.bind("default.core.compose_file", cli.get_option("--compose-file"));
    config.bind("default.core.sys_config_file", cli.get_option("--sys-config-file"));
    config.bind("default.core.data_disks", cli.get_option("--data-disk"));
    config.bind("default.core.simulator.attestation_file", cli.get_option("--fixture"));
    for (auto table : {"internal", "internal-v0", "external", "guest-api"}) {
        config.accept(fmt::format("{}.address", table));
        config.accept(fmt::format("{}.port", table));
        config.accept_unused(fmt::format("{}.reuse", table), "stale sockets are always replaced");
    }
    for (auto key : {"workers", "max_blocking", "ident", "temp_dir", "keep_alive", "log_level"}) {
        config.accept_unused(fmt::format("default.{}", key), "Rocket's settings; see --threads and --log-level");
    }
    config.accept_unused("default.core.simulator.patch_report_data", "the fixture's report data is always patched");
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto logging = apply_logging(args.logging, "dstack-agent"); !logging) return command.usage_error(logging.error().message);
    if (auto applied = config.apply(); !applied) return command.usage_error(applied.error().message);
    if (const auto* file = config.config()) {
        std::pair<std::string*, const char*> listeners[] = {{&args.dstack_socket, "internal"},
                                                            {&args.tappd_socket, "internal-v0"},
                                                            {&args.external, "external"},
                                                            {&args.guest_api, "guest-api"}};
        for (auto [target, table] : listeners) {
            if (!target->empty()) continue;
            auto address = upstream_address(*file, table);
            if (!address) return command.usage_error(address.error().message);
            *target = *address;
        }
    }
    if (args.threads < 1 || args.threads > 64) return command.usage_error("--threads: 1 to 64");
    if (!args.fixture.empty() && args.simulator.empty()) return command.usage_error("--fixture needs --simulator DIR");
    bool simulator = !args.simulator.empty();
    std::filesystem::path dir = args.simulator;
    if (simulator) {
        if (args.tee == "tdx") return command.usage_error("--simulator uses the simulated TEE; drop --tee tdx");
        args.tee = "sim";
        args.sim_state = (dir / "tee").string();
        args.runtime_log_dir = (dir / "tee").string();
        auto defaults = [&](std::string& target, const char* name) {
            if (target.empty()) target = "unix:" + (dir / name).string();
        };
        defaults(args.dstack_socket, "dstack.sock");
        defaults(args.tappd_socket, "tappd.sock");
        defaults(args.external, "external.sock");
        defaults(args.guest_api, "guest.sock");
    } else {
        if (args.dstack_socket.empty()) args.dstack_socket = socket_activated() ? "systemd:0" : "unix:/var/run/dstack.sock";
        if (args.tappd_socket.empty()) args.tappd_socket = socket_activated() ? "systemd:1" : "unix:/var/run/tappd.sock";
        if (args.external.empty()) args.external = "0.0.0.0:8090";
        if (args.guest_api.empty()) args.guest_api = "vsock:any:8000";
    }
    if (args.data_disks.empty()) args.data_disks = {"/"};

    // The TEE. Each start of the simulator is a boot of the simulated CVM: RTMR3 and its runtime
    // log start empty and the boot events are measured again (the identity, keys, MRTD and
    // RTMR0-2 persist), so that a crash between an extension and its log line never outlives a
    // restart.
    std::unique_ptr<tee::Attester> attester;
    std::optional<FileLock> instance_lock;  // held while serving: one simulator per directory
    if (simulator) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) return command.fail(fmt::format("{}: {}", dir.string(), ec.message()));
        auto locked = FileLock::try_acquire(dir / "agent.lock");
        if (!locked) return command.fail(locked.error().message);
        if (!*locked) {
            return command.fail(fmt::format("another dstack agent is serving {} (it holds {}); stop it first", dir.string(),
                                            (dir / "agent.lock").string()));
        }
        instance_lock = std::move(*locked);
    }
    if (simulator && args.fixture.empty()) {
        for (auto name : {"rtmr3", "runtime_events.log", "runtime_event_version"}) {
            std::error_code ec;
            std::filesystem::remove(dir / "tee" / name, ec);
            if (ec) return command.fail(fmt::format("{}: {}", (dir / "tee" / name).string(), ec.message()));
        }
    }
    if (args.fixture.empty()) {
        if (args.tee == "auto") {
            if (!tee::tdx_present()) {
                return command.fail(
                    "no TDX guest here (no /dev/tdx_guest, no configfs-tsm tdx_guest provider); for development run "
                    "`dstack agent --simulator DIR`, or --tee sim");
            }
            args.tee = "tdx";
        }
        auto platform = args.tee == "tdx" ? tee::open_tdx_platform() : tee::open_sim_platform(args.sim_state);
        if (!platform) return command.fail(platform.error().message);
        std::error_code ec;
        std::filesystem::create_directories(args.runtime_log_dir, ec);
        attester = std::make_unique<tee::Attester>(std::move(*platform), args.runtime_log_dir);
    }

    // The boot files.
    agent::BootFilePaths paths;
    if (simulator) {
        auto prepared = agent::prepare_simulator_dir(dir, attester.get());
        if (!prepared) return command.fail(prepared.error().message);
        paths = *prepared;
    }
    if (!args.compose_file.empty()) paths.compose = args.compose_file;
    if (!args.sys_config_file.empty()) paths.sys_config = args.sys_config_file;
    if (!args.keys_file.empty()) paths.keys = args.keys_file;
    if (!args.instance_info.empty()) paths.instance_info = args.instance_info;
    auto files = agent::load_boot_files(paths);
    if (!files) return command.fail(files.error().message);

    agent::AgentSettings settings;
    settings.legacy_cert_extensions = args.legacy_cert_extensions;
    settings.strip_quote_event_log = args.tee == "tdx";
    Result<std::shared_ptr<agent::Agent>> created = make_error("unreachable");
    if (!args.fixture.empty()) {
        auto bytes = read_file(args.fixture, tee::max_attestation_size);
        if (!bytes) return command.fail(bytes.error().message);
        auto fixture = tee::read_evidence(*bytes);
        if (!fixture) return command.fail(fmt::format("{}: {}", args.fixture, fixture.error().message));
        created = agent::Agent::create_from_fixture(std::move(*files), std::move(*fixture), settings);
    } else {
        if (simulator) {
            if (auto emitted = agent::emit_boot_events_once(*files, *attester); !emitted)
                return command.fail(emitted.error().message);
        } else if (auto version = attester->set_event_version(files->compose.event_log_version); !version) {
            return command.fail(version.error().message);
        }
        created = agent::Agent::create(std::move(*files), std::move(attester), settings);
    }
    if (!created) return command.fail(created.error().message);
    std::shared_ptr<const agent::Agent> service = *created;
    if (args.fixture.empty()) {
        if (auto consistent = service->check_consistency(args.runtime_log_dir); !consistent) {
            // On a real TD the log cannot be repaired (RTMR3 only resets with the TD), and apps
            // may still need their keys: say so loudly and serve. A simulated TEE is refused.
            if (args.tee == "tdx") {
                log::error("{}", consistent.error().message);
            } else {
                return command.fail(fmt::format("{} (the simulated TEE's state is in {}; a new --simulator start "
                                                "measures a fresh boot)",
                                                consistent.error().message, args.sim_state));
            }
        }
    }

    Daemon daemon("dstack-agent", args.threads);
    auto listen = [&](const std::string& address, net::http::Handler handler) -> Result<void> {
        if (address.empty() || address == "none") return {};
        return daemon.listen({with_mode(address)}, std::move(handler), server_options(address));
    };
    for (auto [address, handler] : {std::pair{args.dstack_socket, agent::dstack_service(service)},
                                    {args.tappd_socket, agent::tappd_service(service)},
                                    {args.external, agent::external_service(service, args.data_disks)},
                                    {args.guest_api, agent::guest_api_service(service, args.data_disks)}}) {
        if (auto listened = listen(address, handler); !listened) return command.fail(listened.error().message);
    }
    log::info("serving with the {} TEE", service->tee_kind());
    return daemon.serve();
}

}  // namespace dstack::applets
