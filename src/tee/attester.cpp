#include "dstack/tee/attester.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "dstack/base/base64.hpp"
#include "dstack/base/file-lock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/base/printable.hpp"

namespace dstack::tee {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view log_file = "runtime_events.log";
constexpr std::string_view version_file = "runtime_event_version";
constexpr std::string_view lock_file = "runtime_event.lock";
constexpr std::size_t max_version_file_size = 64;

Result<void> create_log_dir(const fs::path& dir) {
    std::error_code error;
    if (fs::is_directory(dir, error)) return {};
    if (dir.has_parent_path()) {
        fs::create_directories(dir.parent_path(), error);
        if (error) return make_error("cannot create {}: {}", dir.parent_path().string(), error.message());
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error("cannot create the runtime log directory {}: {}", dir.string(), std::strerror(errno));
    if (!fs::is_directory(dir, error)) return make_error("the runtime log directory {} is not a directory", dir.string());
    return {};
}

// The version file, or nullopt while this boot has none.
Result<std::optional<unsigned>> read_version(const fs::path& file) {
    std::error_code error;
    if (!fs::exists(file, error)) return std::optional<unsigned>{};
    DSTACK_TRY(auto text, read_text_file(file, max_version_file_size));
    std::string_view value = text;
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ')) value.remove_suffix(1);
    if (value == "1") return std::optional<unsigned>{1};
    if (value == "2") return std::optional<unsigned>{2};
    return make_error("{}: expected the runtime event version 1 or 2, found \"{}\"", file.string(), printable_text(value));
}

Result<void> write_version(const fs::path& file, unsigned version) {
    return write_file_atomic(file, as_bytes(fmt::format("{}", version)), 0644);
}

// One line of the log: {"event":"<name>","payload":"<base64>"} and "version":2 for v2 events.
Result<TdxEvent> parse_line(std::string_view line) {
    DSTACK_TRY(auto document, json::read_json(line, {max_event_log_size, 2}));
    DSTACK_TRY(auto object, document.root().object());
    DSTACK_TRY(auto name, object.string("event"));
    DSTACK_TRY(auto payload_text, object.string("payload"));
    auto payload = base64_decode(payload_text);
    if (!payload) return std::move(payload).take_error().context("$.payload");
    unsigned version = 1;
    if (auto value = object.optional("version")) {
        DSTACK_TRY(version, value->uint_as<unsigned>());
    }
    // The digest is recomputed, never read: the log carries none.
    return make_runtime_event(name, *payload, version);
}

struct LogState {
    std::vector<TdxEvent> events;
    std::size_t size = 0;  // bytes
};

Result<LogState> read_log(const fs::path& file) {
    LogState state;
    std::error_code error;
    if (!fs::exists(file, error)) return state;
    DSTACK_TRY(auto bytes, read_file(file, max_event_log_size));
    state.size = bytes.size();
    std::string_view text = as_chars(bytes);
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty()) continue;
        if (state.events.size() == max_event_count)
            return make_error("{}: more than {} events", file.string(), max_event_count);
        auto event = parse_line(line);
        if (!event) return std::move(event).take_error().context(fmt::format("{} line {}", file.string(), line_number));
        state.events.push_back(std::move(*event));
    }
    return state;
}

std::string log_line(const TdxEvent& event) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "event");
    json::string(out, event.event);
    json::key(out, "payload");
    json::string(out, base64_encode(event.event_payload));
    if (event.version == 2) {
        json::key(out, "version");
        out.Uint(2);
    }
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// Appends the whole line or, on failure, cuts the file back to `size` (what the log held before),
// so that a reader never meets half a line.
Result<void> append_line(const fs::path& file, std::string_view line, std::size_t size) {
    int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return make_error("cannot open {}: {}", file.string(), std::strerror(errno));
    auto fail = [&](std::string_view what) {
        Error error = make_error("cannot {} {}: {}", what, file.string(), std::strerror(errno));
        if (::ftruncate(fd, static_cast<off_t>(size)) != 0) error.message += " (and it could not be cut back)";
        ::close(fd);
        return error;
    };
    struct stat st{};
    if (::fstat(fd, &st) != 0) return fail("stat");
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error("{} is not a regular file", file.string());
    }
    if ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0) return fail("chmod");
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(fd, line.data() + done, line.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("append to");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) return make_error("cannot close {}: {}", file.string(), std::strerror(errno));
    return {};
}

// The process mutex and the flock together: threads of this process and other processes.
struct LogLock {
    std::unique_lock<std::mutex> thread;
    FileLock process;
};

Result<LogLock> lock_log(std::mutex& mutex, const fs::path& dir) {
    std::unique_lock thread(mutex);
    DSTACK_CHECK(create_log_dir(dir));
    DSTACK_TRY(auto process, FileLock::acquire(dir / lock_file));
    return LogLock{std::move(thread), std::move(process)};
}

}  // namespace

Attester::Attester(PlatformPtr platform, std::filesystem::path runtime_log_dir)
    : platform_(std::move(platform)), dir_(std::move(runtime_log_dir)) {}

std::string_view Attester::kind() const { return platform_->kind(); }

Result<unsigned> Attester::set_event_version(unsigned wanted) {
    if (wanted != 1 && wanted != 2) return make_error("runtime event version {}; there are 1 and 2", wanted);
    DSTACK_TRY(auto lock, lock_log(mutex_, dir_));
    auto file = dir_ / version_file;
    DSTACK_TRY(auto current, read_version(file));
    if (current) {
        if (*current != wanted)
            return make_error("this boot's runtime events are version {} ({}); version {} cannot be used in the same boot",
                              *current, file.string(), wanted);
        return *current;
    }
    DSTACK_CHECK(write_version(file, wanted));
    return wanted;
}

Result<void> Attester::emit(std::string_view name, ByteView payload) {
    DSTACK_CHECK(check_runtime_event_name(name));
    DSTACK_TRY(auto lock, lock_log(mutex_, dir_));
    auto version_path = dir_ / version_file;
    DSTACK_TRY(auto current, read_version(version_path));
    // The first event fixes this boot's version, so that a later set_event_version(2) cannot
    // start v2 events after v1 ones.
    if (!current) DSTACK_CHECK(write_version(version_path, 1));
    unsigned version = current.value_or(1);
    DSTACK_TRY(auto event, make_runtime_event(name, payload, version));

    auto log_path = dir_ / log_file;
    DSTACK_TRY(auto log, read_log(log_path));
    std::string line = log_line(event);
    // Checked before RTMR3 moves: a log the reader refuses would never replay again.
    if (log.events.size() >= max_event_count)
        return make_error("runtime event \"{}\": {} already holds {} events, the most it may", printable_text(name), log_path.string(), max_event_count);
    if (log.size + line.size() > max_event_log_size)
        return make_error("runtime event \"{}\": its {}-byte log line would take {} over {} bytes", printable_text(name), line.size(),
                          log_path.string(), max_event_log_size);

    Measurement digest{};
    std::copy(event.digest.begin(), event.digest.end(), digest.begin());
    if (auto extended = platform_->extend_rtmr3(digest); !extended)
        return std::move(extended).take_error().context(fmt::format("runtime event \"{}\": extending RTMR3", printable_text(name)));
    if (auto appended = append_line(log_path, line, log.size); !appended)
        return std::move(appended).take_error().context(
            fmt::format("runtime event \"{}\": RTMR3 was extended but the event is not in the log, which no longer replays to RTMR3",
                        printable_text(name)));
    return {};
}

Result<Attested> Attester::attest(const Fixed<64>& report_data) {
    DSTACK_TRY(auto lock, lock_log(mutex_, dir_));
    DSTACK_TRY(auto log, read_log(dir_ / log_file));
    Attested out;
    DSTACK_TRY(out.quote, platform_->quote(report_data));
    out.report_data = report_data;
    DSTACK_TRY(out.boot_events, platform_->boot_events());
    out.runtime_events = std::move(log.events);
    return out;
}

Result<std::vector<TdxEvent>> Attester::runtime_events() {
    DSTACK_TRY(auto lock, lock_log(mutex_, dir_));
    DSTACK_TRY(auto log, read_log(dir_ / log_file));
    return std::move(log.events);
}

}  // namespace dstack::tee
