// The TDX backend on the guest kernel's own interfaces. Quotes: configfs-tsm (kernel ABI
// Documentation/ABI/testing/configfs-tsm): the report item's `generation` counts writes to it, so
// reading it before writing `inblob` and after reading `outblob` tells whether anyone else wrote in
// between (then the outblob may answer their inblob, not ours). RTMR3: the sysfs measurement file
// of newer kernels, else the TDX_CMD_EXTEND_RTMR ioctl of older ones. Boot log: the CCEL table.
#include "dstack/tee/tdx-platform.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>

#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/unique-fd.hpp"

namespace dstack::tee {
namespace {

// Small text attributes (provider, generation) are a line each.
constexpr std::size_t max_attribute_size = 256;

// linux/tdx-guest.h (kernels 6.2 to 6.15): struct tdx_extend_rtmr_req { __u8 data[48]; __u8 index; }.
struct TdxExtendRtmrRequest {
    std::uint8_t data[48];
    std::uint8_t index;
};
static_assert(sizeof(TdxExtendRtmrRequest) == 49);
constexpr unsigned long tdx_cmd_extend_rtmr = _IOR('T', 3, TdxExtendRtmrRequest);

Error errno_error(std::string_view what, const std::filesystem::path& path, int error) {
    return make_error("{} {}: {}", what, path.string(), std::strerror(error));
}

using Fd = UniqueFd;

bool path_exists(const std::filesystem::path& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

// One attribute, trailing newline removed.
Result<std::string> read_attribute(const std::filesystem::path& path) {
    DSTACK_TRY(std::string text, read_text_file(path, max_attribute_size));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

Result<std::uint64_t> read_generation(const std::filesystem::path& path) {
    DSTACK_TRY(std::string text, read_attribute(path));
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return make_error("{}: expected a decimal counter, read \"{}\"", path.string(), text);
    return value;
}

// The whole buffer in one open/write/close: configfs commits a binary attribute when the file is
// released, so the close is part of the write and its error is reported too.
Result<void> write_all(const std::filesystem::path& path, ByteView bytes) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) return errno_error("cannot open", path, errno);
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("cannot write", path, errno);
        if (n == 0) return make_error("cannot write {}: no progress", path.string());
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd.release()) != 0) return errno_error("cannot write", path, errno);
    return {};
}

// The configfs item is shared by every Platform in this process (one fixed name), and the TDX
// quote path is not concurrent: one quote at a time per process. Other processes are detected by
// the generation counter.
std::mutex& tsm_report_mutex() {
    static std::mutex mutex;
    return mutex;
}

class TdxPlatform final : public Platform {
public:
    explicit TdxPlatform(TdxPaths paths) : paths_(std::move(paths)) {}

    std::string_view kind() const override { return "tdx"; }

    Result<Bytes> quote(const Fixed<64>& report_data) override {
        std::lock_guard lock(tsm_report_mutex());
        auto dir = paths_.tsm_report / tsm_report_name;
        auto context = fmt::format("configfs-tsm report {}", dir.string());
        // On configfs, mkdir creates the item with its attributes; an existing one (left by an
        // earlier quote, ours or dstack-util's) is used as it is. It is never removed: another
        // process may be between its own write and read on it.
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            return errno_error("cannot create configfs-tsm report directory", dir, errno);
        struct stat st{};
        if (::lstat(dir.c_str(), &st) != 0) return errno_error("cannot stat", dir, errno);
        if (!S_ISDIR(st.st_mode)) return make_error("{}: not a directory", context);

        auto provider = read_attribute(dir / "provider");
        if (!provider) return provider.error().context(context);
        if (*provider != "tdx_guest")
            return make_error("{}: the provider is \"{}\", not tdx_guest (not a TDX guest?)", context, *provider);

        std::uint64_t last_before = 0, last_after = 0;
        for (int attempt = 1; attempt <= tsm_report_attempts; ++attempt) {
            auto before = read_generation(dir / "generation");
            if (!before) return before.error().context(context);
            if (auto written = write_all(dir / "inblob", report_data); !written) return written.error().context(context);
            auto outblob = read_file(dir / "outblob", max_quote_size);
            if (!outblob) return outblob.error().context(context);
            auto after = read_generation(dir / "generation");
            if (!after) return after.error().context(context);
            // Exactly our own inblob write: the outblob answers our report data.
            if (*after == *before + 1) return check_quote(*outblob, report_data, dir / "outblob");
            last_before = *before;
            last_after = *after;
        }
        return make_error(
            "{}: the generation counter did not advance by exactly our one inblob write on any of {} attempts (last: {} "
            "before, {} after): another process is using the same report item concurrently",
            context, tsm_report_attempts, last_before, last_after);
    }

    Result<void> extend_rtmr3(const Measurement& digest) override {
        if (path_exists(paths_.rtmr3_sysfs)) {
            // The kernel extends RTMR3 by what is written (48 bytes, one write).
            if (auto written = write_all(paths_.rtmr3_sysfs, digest); !written)
                return written.error().context("cannot extend RTMR3");
            return {};
        }
        Fd fd(::open(paths_.device.c_str(), O_RDWR | O_CLOEXEC));
        if (fd.get() < 0)
            return errno_error("cannot extend RTMR3: no " + paths_.rtmr3_sysfs.string() + ", and cannot open",
                               paths_.device, errno);
        TdxExtendRtmrRequest request{};
        std::memcpy(request.data, digest.data(), digest.size());
        request.index = 3;
        if (::ioctl(fd.get(), tdx_cmd_extend_rtmr, &request) != 0)
            return errno_error("cannot extend RTMR3: TDX_CMD_EXTEND_RTMR on", paths_.device, errno);
        return {};
    }

    Result<std::vector<TdxEvent>> boot_events() override {
        std::lock_guard lock(boot_events_mutex_);
        if (boot_events_) return *boot_events_;
        auto bytes = read_file(paths_.ccel, max_event_log_size);
        if (!bytes) return bytes.error().context("reading the CCEL boot event log");
        auto events = parse_ccel(*bytes);
        if (!events) return events.error().context(fmt::format("CCEL {}", paths_.ccel.string()));
        // The boot log covers RTMR0-2; RTMR3 belongs to the runtime log the Attester keeps, so an
        // RTMR3 record here (none is expected) would be counted twice in a replay.
        std::vector<TdxEvent> boot;
        for (auto& event : *events)
            if (event.imr <= 2) boot.push_back(std::move(event));
        boot_events_ = std::move(boot);
        return *boot_events_;
    }

private:
    static Result<Bytes> check_quote(const Bytes& outblob, const Fixed<64>& report_data,
                                     const std::filesystem::path& path) {
        auto parsed = parse_quote(outblob);
        if (!parsed) return parsed.error().context(fmt::format("{} is not a quote", path.string()));
        if (!parsed->is_tdx()) return make_error("{}: not a TDX quote", path.string());
        if (parsed->report_data() != report_data)
            return make_error("{}: the quote carries report data {}, not the {} written to inblob", path.string(),
                              hex_encode(parsed->report_data()), hex_encode(report_data));
        return outblob;
    }

    TdxPaths paths_;
    std::mutex boot_events_mutex_;
    std::optional<std::vector<TdxEvent>> boot_events_;
};

}  // namespace

bool tdx_present(const TdxPaths& paths) {
    if (path_exists(paths.device)) return true;
    // configfs only shows a provider inside a report item; looking must not create one, so an item
    // left by an earlier quote is what can be seen without the device node.
    auto provider = read_attribute(paths.tsm_report / tsm_report_name / "provider");
    return provider && *provider == "tdx_guest";
}

Result<PlatformPtr> open_tdx_platform(const TdxPaths& paths) {
    if (!tdx_present(paths))
        return make_error("not a TDX guest: neither {} nor a tdx_guest provider under {} exists", paths.device.string(),
                          paths.tsm_report.string());
    return PlatformPtr(std::make_unique<TdxPlatform>(paths));
}

}  // namespace dstack::tee
