// The measuring half of bench/agent: a load generator for the guest agent's unix socket, and the
// rate of GetKey's cryptography alone in this process (the limit the served rate is held to).
// Python cannot issue 5,000+ requests/s, so the client is native: blocking POSIX sockets, one
// thread per connection, raw HTTP/1.1 with Content-Length; every reply must be a 200.
//
//   agent-bench load SOCKET SECONDS CONNECTIONS keepalive|close METHOD PATH [BODY]
//   agent-bench crypto APPKEYS_JSON SECONDS
//
// Each prints one JSON line. bench/agent pins the agent and this program to different cores.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "dstack/app/boot-files.hpp"
#include "dstack/app/guest-keys.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// A reply larger than this is a fault of the server (Info's is about 21 KB).
constexpr std::size_t max_reply_size = 4 << 20;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

bool parse_seconds(const char* text, double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    return end != text && *end == '\0' && out > 0 && out <= 3600;
}

// One connection to the agent's socket; false with a message in `error` on any fault.
class Connection {
public:
    explicit Connection(const std::string& path) : path_(path) {}
    ~Connection() { close(); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connect(std::string& error) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return fail(error, "socket");
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        if (path_.size() >= sizeof address.sun_path) {
            error = "the socket path is too long for sockaddr_un: " + path_;
            return false;
        }
        std::memcpy(address.sun_path, path_.data(), path_.size());
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return fail(error, "connect");
        buffer_.clear();
        return true;
    }

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    bool open() const { return fd_ >= 0; }

    bool send_all(std::string_view data, std::string& error) {
        while (!data.empty()) {
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return fail(error, "send");
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // Reads one reply: the status line, the headers up to the blank line, Content-Length bytes of
    // body. `closes` says whether the server announced Connection: close.
    bool read_reply(int& status, bool& closes, std::string& error) {
        std::size_t header_end;
        while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (buffer_.size() > 64 * 1024) {
                error = "reply headers larger than 64 KiB";
                return false;
            }
            if (!fill(error)) return false;
        }
        std::string_view head(buffer_.data(), header_end);
        if (head.size() < 12 || head.substr(0, 9) != "HTTP/1.1 ") {
            error = fmt::format("not an HTTP/1.1 status line: {:?}", std::string(head.substr(0, 60)));
            return false;
        }
        status = std::atoi(std::string(head.substr(9, 3)).c_str());
        std::size_t length = 0;
        bool have_length = false;
        closes = false;
        std::size_t at = head.find("\r\n");
        while (at != std::string_view::npos) {
            std::size_t next = head.find("\r\n", at + 2);
            std::string line(head.substr(at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2));
            std::transform(line.begin(), line.end(), line.begin(), [](unsigned char c) { return std::tolower(c); });
            if (line.rfind("content-length:", 0) == 0) {
                char* end = nullptr;
                unsigned long long value = std::strtoull(line.c_str() + 15, &end, 10);
                if (end == line.c_str() + 15 || value > max_reply_size) {
                    error = "a bad or too large Content-Length: " + line;
                    return false;
                }
                length = static_cast<std::size_t>(value);
                have_length = true;
            } else if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) {
                closes = true;
            }
            at = next;
        }
        if (!have_length) {
            error = "a reply without Content-Length";
            return false;
        }
        const std::size_t total = header_end + 4 + length;
        while (buffer_.size() < total) {
            if (!fill(error)) return false;
        }
        buffer_.erase(0, total);
        return true;
    }

private:
    bool fill(std::string& error) {
        char chunk[16384];
        for (;;) {
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(error, "recv");
            if (n == 0) {
                error = "the server closed the connection in the middle of a reply";
                return false;
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
            return true;
        }
    }

    bool fail(std::string& error, const char* what) {
        error = fmt::format("{} on {}: {}", what, path_, std::strerror(errno));
        return false;
    }

    std::string path_;
    int fd_ = -1;
    std::string buffer_;
};

struct Worker {
    std::vector<std::uint32_t> latencies_ns;
    std::string error;
};

// Sends the same request until the deadline; keep-alive reuses one connection, otherwise each
// request connects (the connect is in its latency: that is what a per-call client pays).
void run_worker(const std::string& socket, const std::string& request, bool keepalive, Clock::time_point deadline,
                const std::atomic<bool>& failed, Worker& worker) {
    Connection connection(socket);
    worker.latencies_ns.reserve(1 << 16);
    while (!failed.load(std::memory_order_relaxed)) {
        const auto start = Clock::now();
        if (start >= deadline) return;
        if (!connection.open() && !connection.connect(worker.error)) return;
        int status = 0;
        bool closes = false;
        if (!connection.send_all(request, worker.error) || !connection.read_reply(status, closes, worker.error)) return;
        if (status != 200) {
            worker.error = fmt::format("HTTP {} (every reply must be 200)", status);
            return;
        }
        worker.latencies_ns.push_back(static_cast<std::uint32_t>(
            std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count(),
                                   UINT32_MAX)));
        if (!keepalive || closes) connection.close();
    }
}

double percentile_ms(const std::vector<std::uint32_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    std::size_t index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(index, sorted.size() - 1)] / 1e6;
}

int load(int argc, char** argv) {
    if (argc < 8 || argc > 9) {
        fmt::print(stderr, "usage: agent-bench load SOCKET SECONDS CONNECTIONS keepalive|close METHOD PATH [BODY]\n");
        return 2;
    }
    const std::string socket = argv[2];
    double seconds = 0;
    const int connections = std::atoi(argv[4]);
    const std::string mode = argv[5];
    if (!parse_seconds(argv[3], seconds) || connections < 1 || connections > 256 ||
        (mode != "keepalive" && mode != "close")) {
        fmt::print(stderr, "agent-bench: SECONDS in (0, 3600], CONNECTIONS 1 to 256, keepalive or close\n");
        return 2;
    }
    const bool keepalive = mode == "keepalive";
    const std::string body = argc == 9 ? argv[8] : "";
    std::string request = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\n", argv[6], argv[7]);
    if (!body.empty()) request += "Content-Type: application/json\r\n";
    if (!keepalive) request += "Connection: close\r\n";
    request += fmt::format("Content-Length: {}\r\n\r\n{}", body.size(), body);

    std::vector<Worker> workers(static_cast<std::size_t>(connections));
    std::vector<std::thread> threads;
    std::atomic<bool> failed{false};
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (auto& worker : workers) {
        threads.emplace_back([&, w = &worker] {
            run_worker(socket, request, keepalive, deadline, failed, *w);
            if (!w->error.empty()) failed.store(true);
        });
    }
    for (auto& t : threads) t.join();
    const double elapsed = seconds_since(start);
    std::vector<std::uint32_t> all;
    for (auto& worker : workers) {
        if (!worker.error.empty()) {
            fmt::print(stderr, "agent-bench: {} {}: {}\n", argv[6], argv[7], worker.error);
            return 1;
        }
        all.insert(all.end(), worker.latencies_ns.begin(), worker.latencies_ns.end());
    }
    if (all.empty()) {
        fmt::print(stderr, "agent-bench: no request completed in {:.2f} s\n", elapsed);
        return 1;
    }
    std::sort(all.begin(), all.end());
    fmt::print("{{\"requests\":{},\"seconds\":{:.4f},\"requests_per_s\":{:.1f},\"p50_ms\":{:.4f},\"p99_ms\":{:.4f},"
               "\"max_ms\":{:.4f}}}\n",
               all.size(), elapsed, all.size() / elapsed, percentile_ms(all, 0.50), percentile_ms(all, 0.99),
               all.back() / 1e6);
    return 0;
}

// GetKey's work without the server: the same call the agent makes (app::derive_app_key with the
// simulator's root key, path "/bench", purpose "p"), on this thread until the budget is spent.
int crypto(int argc, char** argv) {
    double seconds = 0;
    if (argc != 4 || !parse_seconds(argv[3], seconds)) {
        fmt::print(stderr, "usage: agent-bench crypto APPKEYS_JSON SECONDS\n");
        return 2;
    }
    auto text = dstack::read_text_file(argv[2], dstack::app::max_app_keys_size);
    if (!text) {
        fmt::print(stderr, "agent-bench: {}\n", text.error().message);
        return 2;
    }
    auto keys = dstack::app::parse_app_keys(*text);
    if (!keys) {
        fmt::print(stderr, "agent-bench: {}: {}\n", argv[2], keys.error().message);
        return 2;
    }
    const dstack::app::AppRootKey root{keys->k256_key, keys->k256_signature};
    long iterations = 0;
    double elapsed = 0;
    std::size_t sink = 0;
    std::string key_hex;
    const auto start = Clock::now();
    do {
        auto derived = dstack::app::derive_app_key(root, "/bench", "p", dstack::app::KeyAlgorithm::secp256k1);
        if (!derived) {
            fmt::print(stderr, "agent-bench: derive_app_key: {}\n", derived.error().message);
            return 1;
        }
        sink += derived->signature_chain.front().size();  // keeps the result observably used
        if (iterations == 0) key_hex = dstack::hex_encode(derived->key);
        ++iterations;
        if ((iterations & 63) == 0) elapsed = seconds_since(start);
    } while (elapsed < seconds);
    elapsed = seconds_since(start);
    fmt::print("{{\"iterations\":{},\"seconds\":{:.4f},\"per_s\":{:.1f},\"signature_bytes\":{},\"key\":\"{}\"}}\n",
               iterations, elapsed, iterations / elapsed, sink / static_cast<std::size_t>(iterations), key_hex);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string_view what = argc > 1 ? argv[1] : "";
    if (what == "load") return load(argc, argv);
    if (what == "crypto") return crypto(argc, argv);
    fmt::print(stderr,
               "usage: agent-bench load SOCKET SECONDS CONNECTIONS keepalive|close METHOD PATH [BODY]\n"
               "       agent-bench crypto APPKEYS_JSON SECONDS\n");
    return 2;
}
