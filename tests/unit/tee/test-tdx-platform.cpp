// The TDX backend against a fake kernel tree in a temporary directory. configfs cannot be emulated
// with plain files, so the report item is pre-created (the backend accepts an existing item, as it
// must on a real guest where an earlier quote left it) and a server thread plays the kernel's part:
// it watches `inblob` with inotify, and for each write it bumps `generation` (by one, as the kernel
// does, plus any writes of a simulated rival), then writes the answer into `outblob`, a FIFO, so the
// backend's read of outblob blocks until the answer is there and ends at its end.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/sim.hpp"
#include "dstack/tee/tdx-platform.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

const sim::SimPki& pki() {
    static const sim::SimPki generated = [] {
        auto made = sim::generate_pki();
        REQUIRE_MESSAGE(made.ok(), (made.ok() ? "" : made.error().message));
        return *made;
    }();
    return generated;
}

Bytes sim_quote(const Fixed<64>& report_data) {
    sim::SimQuoteOptions options;
    options.report_data = report_data;
    auto quote = sim::make_quote(pki(), options);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    return *quote;
}

Fixed<64> random_report_data() {
    Fixed<64> out{};
    auto bytes = crypto::random_bytes(out.size());
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return out;
}

void write_text(const std::filesystem::path& path, std::string_view text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

std::string read_text(const std::filesystem::path& path) {
    auto text = read_text_file(path, 1 << 20);
    REQUIRE_MESSAGE(text.ok(), (text.ok() ? "" : text.error().message));
    return *text;
}

std::string error_of(const Error& error) { return error.message; }

struct FakeTree {
    std::filesystem::path root;
    TdxPaths paths;
    std::filesystem::path item;

    FakeTree() {
        char pattern[] = "/tmp/dstack-tdx-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        root = pattern;
        paths.tsm_report = root / "tsm" / "report";
        paths.rtmr3_sysfs = root / "measurements" / "rtmr3:sha384";
        paths.device = root / "tdx_guest";
        paths.ccel = root / "CCEL";
        item = paths.tsm_report / tsm_report_name;
        std::filesystem::create_directories(item);
        write_text(item / "provider", "tdx_guest\n");
        write_text(item / "generation", "0\n");
        write_text(item / "inblob", "");
        REQUIRE(::mkfifo((item / "outblob").c_str(), 0600) == 0);
    }
    ~FakeTree() {
        std::error_code ignored;
        std::filesystem::remove_all(root, ignored);
    }
    PlatformPtr open() const {
        auto platform = open_tdx_platform(paths);
        REQUIRE_MESSAGE(platform.ok(), (platform.ok() ? "" : platform.error().message));
        return std::move(*platform);
    }
};

// What the fake kernel answers to the n-th inblob write (n from 0).
struct Answer {
    Bytes outblob;
    unsigned rival_writes = 0;  // inblob writes of another process, counted in generation too
};
using Policy = std::function<Answer(int request, const Fixed<64>& inblob)>;

class FakeKernel {
public:
    FakeKernel(const FakeTree& tree, Policy policy) : item_(tree.item), policy_(std::move(policy)) {
        pki();  // generated here, on the test's thread, not on the server's
        inotify_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        REQUIRE(inotify_ >= 0);
        REQUIRE(::inotify_add_watch(inotify_, (item_ / "inblob").c_str(), IN_CLOSE_WRITE) >= 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeKernel() {
        stop_ = true;
        thread_.join();
        ::close(inotify_);
    }
    int served() const { return served_; }
    // Waits (at most 5 s) until `count` answers are written and their outblob closed. A FIFO that
    // a reader gave up on early (the oversize case) is still open on the writer's side for a
    // moment; a next quote opening outblob then would read that stale writer, which a real
    // kernel's synchronous outblob read never shows.
    void wait_finished(int count) const {
        for (int i = 0; i < 5000 && finished_ < count; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }

private:
    void serve() {
        // The backend stops reading an oversized outblob: the write then fails with EPIPE instead of
        // killing the test process.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        while (!stop_) {
            pollfd watch{inotify_, POLLIN, 0};
            if (::poll(&watch, 1, 20) <= 0) continue;
            alignas(inotify_event) char buffer[4096];
            ssize_t n = ::read(inotify_, buffer, sizeof buffer);
            for (char* at = buffer; n > 0 && at < buffer + n;) {
                auto* event = reinterpret_cast<inotify_event*>(at);
                if (event->mask & IN_CLOSE_WRITE) answer();
                at += sizeof(inotify_event) + event->len;
            }
        }
    }

    void answer() {
        auto inblob = read_file(item_ / "inblob", 4096);
        Fixed<64> report_data{};
        if (inblob && inblob->size() == report_data.size()) std::copy(inblob->begin(), inblob->end(), report_data.begin());
        Answer reply = policy_(served_, report_data);
        auto text = read_text_file(item_ / "generation", 64);
        auto generation = text ? std::stoull(*text) : 0;
        // No doctest assertion on this thread (a failing REQUIRE would throw here): the test sees a
        // wrong generation through the backend's check.
        // Replaced atomically, as configfs reads are: a truncate-then-write could be read half done.
        {
            std::ofstream(item_ / "generation.new", std::ios::binary | std::ios::trunc)
                << std::to_string(generation + 1 + reply.rival_writes) << "\n";
        }
        std::filesystem::rename(item_ / "generation.new", item_ / "generation");
        int fd = -1;
        while (!stop_) {
            fd = ::open((item_ / "outblob").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0 || errno != ENXIO) break;  // ENXIO: no reader yet
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (fd < 0) return;
        // Counted once the backend has outblob open, before it can see the end of the answer (or
        // give up on an oversized one), so that the test reads a settled count.
        ++served_;
        ::fcntl(fd, F_SETFL, 0);
        std::size_t done = 0;
        while (done < reply.outblob.size()) {
            ssize_t n = ::write(fd, reply.outblob.data() + done, reply.outblob.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
        ++finished_;
    }

    std::filesystem::path item_;
    Policy policy_;
    int inotify_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> served_{0};
    std::atomic<int> finished_{0};
    std::thread thread_;
};

Answer honest(int, const Fixed<64>& inblob) { return {sim_quote(inblob), 0}; }

}  // namespace

TEST_CASE("tdx platform: a quote through configfs-tsm carries the report data written to inblob") {
    FakeTree tree;
    FakeKernel kernel(tree, honest);
    auto platform = tree.open();
    CHECK(platform->kind() == "tdx");
    auto report_data = random_report_data();
    auto quote = platform->quote(report_data);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    auto parsed = parse_quote(*quote);
    REQUIRE(parsed.ok());
    CHECK(parsed->is_tdx());
    CHECK(parsed->report_data() == report_data);
    CHECK(kernel.served() == 1);
    CHECK(read_text(tree.item / "generation") == "1\n");
    // A second quote reuses the existing item.
    auto again = platform->quote(random_report_data());
    CHECK(again.ok());
    CHECK(kernel.served() == 2);
}

TEST_CASE("tdx platform: a rival write between inblob and outblob is detected and the quote retried") {
    FakeTree tree;
    Fixed<64> rival_data{};
    rival_data.fill(0xEE);
    // The first answer is to the rival's inblob (generation advanced by two): it must not be returned.
    FakeKernel kernel(tree, [&](int request, const Fixed<64>& inblob) {
        return request == 0 ? Answer{sim_quote(rival_data), 1} : Answer{sim_quote(inblob), 0};
    });
    auto report_data = random_report_data();
    auto quote = tree.open()->quote(report_data);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    CHECK(parse_quote(*quote)->report_data() == report_data);
    CHECK(kernel.served() == 2);
}

TEST_CASE("tdx platform: a rival on every attempt gives a clear error after a bounded number of tries") {
    FakeTree tree;
    FakeKernel kernel(tree, [](int, const Fixed<64>& inblob) { return Answer{sim_quote(inblob), 1}; });
    auto quote = tree.open()->quote(random_report_data());
    REQUIRE_FALSE(quote.ok());
    CHECK_MESSAGE(error_of(quote.error()).find("generation counter") != std::string::npos, error_of(quote.error()));
    CHECK_MESSAGE(error_of(quote.error()).find("3 attempts") != std::string::npos, error_of(quote.error()));
    CHECK_MESSAGE(error_of(quote.error()).find("another process") != std::string::npos, error_of(quote.error()));
    CHECK(kernel.served() == tsm_report_attempts);
}

TEST_CASE("tdx platform: a provider other than tdx_guest is refused before anything is written") {
    FakeTree tree;
    write_text(tree.item / "provider", "sev_guest\n");
    write_text(tree.paths.device, "");  // so that the platform opens at all
    FakeKernel kernel(tree, honest);
    auto quote = tree.open()->quote(random_report_data());
    REQUIRE_FALSE(quote.ok());
    CHECK_MESSAGE(error_of(quote.error()).find("\"sev_guest\", not tdx_guest") != std::string::npos, error_of(quote.error()));
    CHECK(kernel.served() == 0);
    CHECK(read_text(tree.item / "inblob").empty());
}

TEST_CASE("tdx platform: an outblob that answers other report data is refused") {
    FakeTree tree;
    FakeKernel kernel(tree, [](int, const Fixed<64>& inblob) {
        auto other = inblob;
        other[63] ^= 1;
        return Answer{sim_quote(other), 0};
    });
    auto quote = tree.open()->quote(random_report_data());
    REQUIRE_FALSE(quote.ok());
    CHECK_MESSAGE(error_of(quote.error()).find("carries report data") != std::string::npos, error_of(quote.error()));
    CHECK(kernel.served() == 1);
}

TEST_CASE("tdx platform: an outblob over the quote size limit, or not a quote, is refused") {
    FakeTree tree;
    FakeKernel kernel(tree, [](int request, const Fixed<64>& inblob) {
        if (request == 0) return Answer{Bytes(max_quote_size + 1, 0), 0};
        auto quote = sim_quote(inblob);
        quote.resize(100);  // truncated
        return Answer{quote, 0};
    });
    auto platform = tree.open();
    auto oversize = platform->quote(random_report_data());
    REQUIRE_FALSE(oversize.ok());
    CHECK_MESSAGE(error_of(oversize.error()).find("too large") != std::string::npos, error_of(oversize.error()));
    CHECK_MESSAGE(error_of(oversize.error()).find("outblob") != std::string::npos, error_of(oversize.error()));
    kernel.wait_finished(1);
    auto truncated = platform->quote(random_report_data());
    REQUIRE_FALSE(truncated.ok());
    CHECK_MESSAGE(error_of(truncated.error()).find("is not a quote") != std::string::npos, error_of(truncated.error()));
    CHECK(kernel.served() == 2);
}

TEST_CASE("tdx platform: presence is the device node or a tdx_guest provider") {
    FakeTree tree;
    CHECK(tdx_present(tree.paths));  // the provider of the pre-created item
    write_text(tree.item / "provider", "sev_guest\n");
    CHECK_FALSE(tdx_present(tree.paths));
    auto refused = open_tdx_platform(tree.paths);
    REQUIRE_FALSE(refused.ok());
    CHECK_MESSAGE(error_of(refused.error()).find("not a TDX guest") != std::string::npos, error_of(refused.error()));
    write_text(tree.paths.device, "");
    CHECK(tdx_present(tree.paths));
}

TEST_CASE("tdx platform: RTMR3 is extended by writing the digest to the sysfs measurement file") {
    FakeTree tree;
    std::filesystem::create_directories(tree.paths.rtmr3_sysfs.parent_path());
    write_text(tree.paths.rtmr3_sysfs, "");
    Measurement digest{};
    for (std::size_t i = 0; i < digest.size(); ++i) digest[i] = static_cast<std::uint8_t>(i * 7 + 1);
    auto extended = tree.open()->extend_rtmr3(digest);
    REQUIRE_MESSAGE(extended.ok(), (extended.ok() ? "" : extended.error().message));
    auto written = read_file(tree.paths.rtmr3_sysfs, 1024);
    REQUIRE(written.ok());
    CHECK(hex_encode(*written) == hex_encode(digest));
}

TEST_CASE("tdx platform: without the sysfs file RTMR3 goes to the device ioctl, whose errors name the device") {
    FakeTree tree;
    auto platform = tree.open();
    Measurement digest{};
    auto missing = platform->extend_rtmr3(digest);
    REQUIRE_FALSE(missing.ok());
    CHECK_MESSAGE(error_of(missing.error()).find(tree.paths.device.string()) != std::string::npos, error_of(missing.error()));
    CHECK_MESSAGE(error_of(missing.error()).find(tree.paths.rtmr3_sysfs.string()) != std::string::npos, error_of(missing.error()));
    // A regular file in place of the device node: the ioctl itself is made and refused (ENOTTY).
    write_text(tree.paths.device, "");
    auto refused = platform->extend_rtmr3(digest);
    REQUIRE_FALSE(refused.ok());
    CHECK_MESSAGE(error_of(refused.error()).find("TDX_CMD_EXTEND_RTMR on " + tree.paths.device.string()) != std::string::npos,
                  error_of(refused.error()));
    CHECK_MESSAGE(error_of(refused.error()).find(std::strerror(ENOTTY)) != std::string::npos, error_of(refused.error()));
}

TEST_CASE("tdx platform: boot events are the CCEL's RTMR0-2 records, read once" *
          doctest::skip(vector_missing("dstack/ccel.bin"))) {
    FakeTree tree;
    std::filesystem::copy_file(vector_path("dstack/ccel.bin"), tree.paths.ccel);
    auto expected = parse_ccel(*read_file(tree.paths.ccel, max_event_log_size));
    REQUIRE(expected.ok());
    std::size_t boot_count = 0;
    for (const auto& event : *expected) boot_count += event.imr <= 2;
    REQUIRE(boot_count > 0);

    auto platform = tree.open();
    auto events = platform->boot_events();
    REQUIRE_MESSAGE(events.ok(), (events.ok() ? "" : events.error().message));
    CHECK(events->size() == boot_count);
    for (const auto& event : *events) CHECK(event.imr <= 2);
    CHECK(replay_rtmrs(*events).ok());
    // Kept after the first read: the table is not read again.
    std::filesystem::remove(tree.paths.ccel);
    auto again = platform->boot_events();
    REQUIRE(again.ok());
    REQUIRE(again->size() == events->size());
    for (std::size_t i = 0; i < events->size(); ++i) CHECK((*again)[i].digest == (*events)[i].digest);
}

TEST_CASE("tdx platform: a missing CCEL table is an error naming its path, and is not cached") {
    FakeTree tree;
    auto platform = tree.open();
    auto events = platform->boot_events();
    REQUIRE_FALSE(events.ok());
    CHECK_MESSAGE(error_of(events.error()).find(tree.paths.ccel.string()) != std::string::npos, error_of(events.error()));
    write_text(tree.paths.ccel, "not a CCEL");
    auto garbage = platform->boot_events();
    REQUIRE_FALSE(garbage.ok());
    CHECK_MESSAGE(error_of(garbage.error()).find(tree.paths.ccel.string()) != std::string::npos, error_of(garbage.error()));
}
