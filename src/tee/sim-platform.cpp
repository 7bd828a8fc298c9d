// The simulated TEE as a Platform. Everything lives in the state directory:
//   root.pem, *.pem, *.key, *.crl.der  the simulator's PKI (SimPki::save; keys 0600)
//   collateral.json                    collateral for `dstack verify --collateral`, valid a year
//   td-identity.json                   MRTD and the synthetic boot log that replays to RTMR0-2
//   rtmr3                              RTMR3 as hex, replaced atomically on every extension
//   state.lock                         flock'd while any of these is read or written
// Every RTMR3 read and extension goes to the file under the lock, so two platforms opened on one
// directory (two processes) extend one RTMR3, as two processes of one TD would.
#include "dstack/tee/sim-platform.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "dstack/base/clock.hpp"
#include "dstack/base/file-lock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/sim.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::tee {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view identity_file = "td-identity.json";
constexpr std::string_view rtmr3_file = "rtmr3";
constexpr std::string_view lock_file = "state.lock";
constexpr std::size_t max_identity_size = 256 * 1024;
constexpr std::size_t max_rtmr3_file_size = 256;

constexpr UnixSeconds one_day = 86400;
constexpr UnixSeconds collateral_lifetime = 365 * one_day;
// Collateral closer than this to its nextUpdate is replaced, so that a verifier handed the file
// today can still use it for a while.
constexpr UnixSeconds collateral_renewal = 30 * one_day;

// Event types of the TCG PC Client spec and UEFI, as TDVF logs them.
constexpr std::uint32_t ev_event_tag = 0x00000006;
constexpr std::uint32_t ev_platform_config_flags = 0x0000000a;  // TDVF's "ACPI DATA" events
constexpr std::uint32_t ev_efi_variable_driver_config = 0x80000001;
constexpr std::uint32_t ev_efi_boot_services_application = 0x80000003;
constexpr std::uint32_t ev_efi_action = 0x80000007;
constexpr std::uint32_t ev_efi_platform_firmware_blob2 = 0x8000000a;

struct TdIdentity {
    Fixed<48> mr_td{};
    std::vector<TdxEvent> boot_events;
    std::array<Measurement, 4> rtmrs{};
};

Error errno_error(std::string_view what, const fs::path& path, const std::error_code& error) {
    return make_error("{} {}: {}", what, path.string(), error.message());
}

Result<void> create_private_dir(const fs::path& dir) {
    std::error_code error;
    if (fs::is_directory(dir, error)) return {};
    if (dir.has_parent_path()) {
        fs::create_directories(dir.parent_path(), error);
        if (error) return errno_error("cannot create", dir.parent_path(), error);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error("cannot create the simulator state directory {}: {}", dir.string(), std::strerror(errno));
    if (!fs::is_directory(dir, error)) return make_error("the simulator state {} is not a directory", dir.string());
    return {};
}

// A boot event whose digest stands for measured content that only this TD has: derived from the
// directory's seed, so that every state directory is a different TD.
TdxEvent measured(std::uint32_t imr, std::uint32_t type, std::string_view name, std::string_view payload,
                  ByteView seed, std::string_view what) {
    TdxEvent event;
    event.imr = imr;
    event.event_type = type;
    event.event = std::string(name);
    event.event_payload = to_bytes(payload);
    event.digest = crypto::sha384(concat({seed, as_bytes(":"), as_bytes(what)}));
    return event;
}

// A boot event that measures its own payload (EV_EFI_ACTION strings, the kernel command line).
TdxEvent self_measured(std::uint32_t imr, std::uint32_t type, std::string_view payload) {
    TdxEvent event;
    event.imr = imr;
    event.event_type = type;
    event.event_payload = to_bytes(payload);
    event.digest = crypto::sha384(as_bytes(payload));
    return event;
}

// The shape of a TDVF + direct kernel boot: firmware and configuration into RTMR0 (with TDVF's
// three "ACPI DATA" events, named as parse_ccel names them), the kernel into RTMR1, the command
// line and initrd into RTMR2. Names are empty but for the ACPI events, as in a log read from CCEL.
TdIdentity make_identity() {
    Bytes seed = crypto::random_bytes(32);
    TdIdentity identity;
    auto mr_td = crypto::sha384(concat({seed, as_bytes(":mrtd")}));
    std::copy(mr_td.begin(), mr_td.end(), identity.mr_td.begin());
    std::string cmdline = fmt::format("console=hvc0 root=/dev/vda ro dstack.simulated=1 dstack.image={}",
                                      hex_encode(crypto::sha384(concat({seed, as_bytes(":rootfs")}))));
    auto& events = identity.boot_events;
    events.push_back(measured(0, ev_efi_platform_firmware_blob2, "", "TDVF configuration firmware volume (simulated)", seed, "cfv"));
    events.push_back(measured(0, ev_efi_variable_driver_config, "", "SecureBoot (simulated)", seed, "secure-boot"));
    events.push_back(measured(0, ev_platform_config_flags, "acpi-loader", "ACPI DATA", seed, "acpi-loader"));
    events.push_back(measured(0, ev_platform_config_flags, "acpi-rsdp", "ACPI DATA", seed, "acpi-rsdp"));
    events.push_back(measured(0, ev_platform_config_flags, "acpi-tables", "ACPI DATA", seed, "acpi-tables"));
    events.push_back(self_measured(1, ev_efi_action, "Calling EFI Application from Boot Option"));
    events.push_back(measured(1, ev_efi_boot_services_application, "", "bzImage (simulated)", seed, "kernel"));
    events.push_back(self_measured(1, ev_efi_action, "Exit Boot Services Invocation"));
    events.push_back(self_measured(2, ev_event_tag, cmdline));
    events.push_back(measured(2, ev_event_tag, "", "initrd (simulated)", seed, "initrd"));
    return identity;
}

std::string identity_json(const TdIdentity& identity) {
    return fmt::format("{{\"mrtd\":\"{}\",\"boot_events\":{}}}\n", hex_encode(identity.mr_td),
                       event_log_to_json(identity.boot_events));
}

Result<TdIdentity> parse_identity(std::string_view text) {
    DSTACK_TRY(auto document, json::read_json(text, {max_identity_size, 4}));
    DSTACK_TRY(auto object, document.root().object());
    TdIdentity identity;
    DSTACK_TRY(auto mr_td, object.hex("mrtd", 48));
    std::copy(mr_td.begin(), mr_td.end(), identity.mr_td.begin());
    DSTACK_TRY(auto events_value, object.required("boot_events"));
    DSTACK_TRY(identity.boot_events, event_log_from_json(events_value));
    for (std::size_t i = 0; i < identity.boot_events.size(); ++i) {
        const auto& event = identity.boot_events[i];
        if (event.imr > 2) return make_error("$.boot_events[{}]: imr {}; boot events extend RTMR0-2 only", i, event.imr);
        if (event.digest.size() != 48) return make_error("$.boot_events[{}]: a digest of {} bytes, not 48", i, event.digest.size());
    }
    DSTACK_TRY(identity.rtmrs, replay_rtmrs(identity.boot_events));
    return identity;
}

Result<TdIdentity> load_or_create_identity(const fs::path& file) {
    std::error_code error;
    if (!fs::exists(file, error)) {
        auto identity = make_identity();
        DSTACK_TRY(identity.rtmrs, replay_rtmrs(identity.boot_events));
        DSTACK_CHECK(write_file_atomic(file, as_bytes(identity_json(identity)), 0644));
        return identity;
    }
    DSTACK_TRY(auto text, read_text_file(file, max_identity_size));
    auto identity = parse_identity(text);
    if (!identity) return std::move(identity).take_error().context(file.string());
    return identity;
}

Result<Measurement> read_rtmr3(const fs::path& file) {
    DSTACK_TRY(auto text, read_text_file(file, max_rtmr3_file_size));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto bytes = hex_decode(text);
    if (!bytes || bytes->size() != 48) return make_error("{}: expected RTMR3 as 96 hex digits", file.string());
    Measurement out{};
    std::copy(bytes->begin(), bytes->end(), out.begin());
    return out;
}

Result<void> write_rtmr3(const fs::path& file, const Measurement& value) {
    return write_file_atomic(file, as_bytes(hex_encode(value) + "\n"), 0644);
}

// When the collateral in `file` stops being usable (its earliest nextUpdate), if it parses and
// verifies against the PKI's root now.
Result<UnixSeconds> collateral_valid_until(const fs::path& file, const sim::SimPki& pki, UnixSeconds now) {
    DSTACK_TRY(auto text, read_text_file(file, max_collateral_size));
    DSTACK_TRY(auto collateral, parse_collateral_json(text));
    DSTACK_TRY(auto tcb_info, parse_tcb_info(collateral.tcb_info));
    DSTACK_TRY(auto qe_identity, parse_qe_identity(collateral.qe_identity));
    DcapOptions options;
    options.now = now;
    options.trust_anchor = pki.root;
    DSTACK_CHECK(verify_collateral(collateral, options));
    return std::min(tcb_info.next_update, qe_identity.next_update);
}

// Keeps `file` verifying for at least collateral_renewal more; returns its nextUpdate.
Result<UnixSeconds> refresh_collateral(const fs::path& file, const sim::SimPki& pki, UnixSeconds now) {
    std::error_code error;
    if (fs::exists(file, error)) {
        auto until = collateral_valid_until(file, pki, now);
        if (until && *until - now >= collateral_renewal) return *until;
        // Stale, damaged or made by another PKI: the simulator owns this file, so it is replaced.
    }
    sim::SimCollateralOptions options;
    options.issue_date = now - 60;  // a verifier whose clock is a little behind still accepts it
    options.next_update = now + collateral_lifetime;
    DSTACK_TRY(auto collateral, sim::make_collateral(pki, options));
    DSTACK_CHECK(write_file_atomic(file, as_bytes(collateral_to_json(collateral)), 0644));
    return options.next_update;
}

Result<sim::SimPki> load_or_create_pki(const fs::path& dir) {
    std::error_code error;
    if (fs::exists(dir / sim_trust_root_file, error)) return sim::SimPki::load(dir);
    DSTACK_TRY(auto pki, sim::generate_pki());
    DSTACK_CHECK(pki.save(dir));
    return pki;
}

class SimPlatform final : public Platform {
public:
    SimPlatform(fs::path dir, sim::SimPki pki, TdIdentity identity, UnixSeconds collateral_until)
        : dir_(std::move(dir)), pki_(std::move(pki)), identity_(std::move(identity)), collateral_until_(collateral_until) {}

    std::string_view kind() const override { return "sim"; }

    Result<Bytes> quote(const Fixed<64>& report_data) override {
        Measurement rtmr3{};
        {
            std::lock_guard guard(mutex_);
            DSTACK_TRY(auto lock, FileLock::acquire(dir_ / lock_file));
            // A long-running agent keeps its collateral file fresh without a restart.
            UnixSeconds now = system_now();
            if (collateral_until_ - now < collateral_renewal) {
                DSTACK_TRY(collateral_until_, refresh_collateral(dir_ / sim_collateral_file, pki_, now));
            }
            DSTACK_TRY(rtmr3, read_rtmr3(dir_ / rtmr3_file));
        }
        auto td = sim::default_td_report();
        td.mr_td = identity_.mr_td;
        td.rt_mr0 = identity_.rtmrs[0];
        td.rt_mr1 = identity_.rtmrs[1];
        td.rt_mr2 = identity_.rtmrs[2];
        td.rt_mr3 = rtmr3;
        td.report_data = report_data;
        sim::SimQuoteOptions options;
        options.td = td;
        options.report_data = report_data;
        return sim::make_quote(pki_, options);
    }

    Result<void> extend_rtmr3(const Measurement& digest) override {
        std::lock_guard guard(mutex_);
        DSTACK_TRY(auto lock, FileLock::acquire(dir_ / lock_file));
        auto file = dir_ / rtmr3_file;
        DSTACK_TRY(auto current, read_rtmr3(file));
        Bytes next = crypto::sha384(concat({current, digest}));
        Measurement value{};
        std::copy(next.begin(), next.end(), value.begin());
        return write_rtmr3(file, value);
    }

    Result<std::vector<TdxEvent>> boot_events() override { return identity_.boot_events; }

private:
    fs::path dir_;
    sim::SimPki pki_;
    TdIdentity identity_;
    std::mutex mutex_;
    UnixSeconds collateral_until_;
};

Result<PlatformPtr> open(const fs::path& dir) {
    DSTACK_CHECK(create_private_dir(dir));
    DSTACK_TRY(auto lock, FileLock::acquire(dir / lock_file));
    DSTACK_TRY(auto pki, load_or_create_pki(dir));
    DSTACK_TRY(auto identity, load_or_create_identity(dir / identity_file));
    std::error_code error;
    if (!fs::exists(dir / rtmr3_file, error)) DSTACK_CHECK(write_rtmr3(dir / rtmr3_file, Measurement{}));
    DSTACK_CHECK(read_rtmr3(dir / rtmr3_file));
    DSTACK_TRY(auto collateral_until, refresh_collateral(dir / sim_collateral_file, pki, system_now()));
    return PlatformPtr(std::make_unique<SimPlatform>(dir, std::move(pki), std::move(identity), collateral_until));
}

}  // namespace

Result<PlatformPtr> open_sim_platform(const std::filesystem::path& state_dir) {
    auto platform = open(state_dir);
    if (!platform) return std::move(platform).take_error().context(fmt::format("simulated TEE in {}", state_dir.string()));
    return platform;
}

}  // namespace dstack::tee
