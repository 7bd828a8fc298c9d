// Measures DCAP quote verification the way a verifier service meets it: the first quote of a
// fresh process (cold), a stream of quotes each verified from scratch, and a stream sharing one
// collateral cache (many quotes of one platform). bench/verify compares the figures with the npm
// dcap-qvl packages and the OpenSSL P-256 limit; this program only measures.
//
//   verify-bench QUOTE COLLATERAL_JSON NOW_UNIX_SECONDS [SECONDS_PER_PHASE]
//
// Prints readable lines, then one JSON line (the last line) for scripts.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "dstack/base/file.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t max_input_size = 1 << 20;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Rate {
    long iterations = 0;
    double seconds = 0;
    double per_second() const { return seconds > 0 ? iterations / seconds : 0; }
};

// Verifies until `budget` seconds have passed; every verification must succeed, or the figure
// would time a shortcut (an early rejection) instead of the full procedure.
bool measure(dstack::ByteView quote, const dstack::tee::Collateral& collateral,
             const dstack::tee::DcapOptions& options, double budget, Rate& rate) {
    const auto start = Clock::now();
    do {
        auto result = dstack::tee::verify_quote(quote, collateral, options);
        if (!result.ok()) {
            fmt::print(stderr, "verify-bench: verification failed on iteration {}: {}\n", rate.iterations,
                       result.error ? result.error->message : std::string("(no error recorded)"));
            return false;
        }
        ++rate.iterations;
        rate.seconds = seconds_since(start);
    } while (rate.seconds < budget);
    return true;
}

long ru_maxrss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;  // KiB on Linux
}

// Linux carries ru_maxrss across execve, so a benchmark started by a bigger parent (python's
// fork before exec) would report the parent's size; the memory map's own high-water mark (VmHWM)
// starts afresh at exec. Falls back to ru_maxrss where /proc is unavailable.
long peak_rss_kib() {
    if (std::FILE* status = std::fopen("/proc/self/status", "r")) {
        char line[256];
        long kib = -1;
        while (std::fgets(line, sizeof line, status)) {
            if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
        }
        std::fclose(status);
        if (kib >= 0) return kib;
    }
    return ru_maxrss_kib();
}

bool parse_number(std::string_view text, double& out) {
    if (text.empty()) return false;
    char* end = nullptr;
    std::string copy(text);
    out = std::strtod(copy.c_str(), &end);
    return end == copy.c_str() + copy.size() && out >= 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4 || argc > 5) {
        fmt::print(stderr, "usage: verify-bench QUOTE COLLATERAL_JSON NOW_UNIX_SECONDS [SECONDS_PER_PHASE]\n");
        return 2;
    }
    double now = 0, budget = 2.0;
    if (!parse_number(argv[3], now) || (argc == 5 && (!parse_number(argv[4], budget) || budget <= 0))) {
        fmt::print(stderr, "verify-bench: NOW must be Unix seconds and SECONDS_PER_PHASE a positive number\n");
        return 2;
    }
    auto quote = dstack::read_file(argv[1], max_input_size);
    if (!quote) {
        fmt::print(stderr, "verify-bench: {}\n", quote.error().message);
        return 2;
    }
    auto collateral_text = dstack::read_text_file(argv[2], max_input_size);
    if (!collateral_text) {
        fmt::print(stderr, "verify-bench: {}\n", collateral_text.error().message);
        return 2;
    }
    auto collateral = dstack::tee::parse_collateral_json(*collateral_text);
    if (!collateral) {
        fmt::print(stderr, "verify-bench: {}: {}\n", argv[2], collateral.error().message);
        return 2;
    }

    dstack::tee::DcapOptions options;
    options.now = static_cast<dstack::UnixSeconds>(now);
    const dstack::ByteView quote_bytes(*quote);

    // Cold: whatever the first verification pays once (root CA parse, crypto library set-up,
    // first-touch of pages) is in this figure and nowhere else.
    const auto cold_start = Clock::now();
    auto first = dstack::tee::verify_quote(quote_bytes, *collateral, options);
    const double cold_ms = seconds_since(cold_start) * 1000;
    if (!first.ok()) {
        fmt::print(stderr, "verify-bench: the quote does not verify: {}\n",
                   first.error ? first.error->message : std::string("(no error recorded)"));
        return 1;
    }
    const std::string status(dstack::tee::tcb_status_name(first.report->verdict.status));

    Rate uncached;
    if (!measure(quote_bytes, *collateral, options, budget, uncached)) return 1;

    dstack::tee::CollateralCache cache;
    dstack::tee::DcapOptions cached_options = options;
    cached_options.cache = &cache;
    // Fill the cache first: the figure is the steady state of quotes sharing collateral.
    auto warm = dstack::tee::verify_quote(quote_bytes, *collateral, cached_options);
    if (!warm.ok()) {
        fmt::print(stderr, "verify-bench: verification with the cache failed: {}\n",
                   warm.error ? warm.error->message : std::string("(no error recorded)"));
        return 1;
    }
    Rate cached;
    if (!measure(quote_bytes, *collateral, cached_options, budget, cached)) return 1;

    const long rss = peak_rss_kib();
    fmt::print("status               {}\n", status);
    fmt::print("cold (first) verify  {:.3f} ms\n", cold_ms);
    fmt::print("no cache             {:.1f} quotes/s ({} in {:.2f} s)\n", uncached.per_second(),
               uncached.iterations, uncached.seconds);
    fmt::print("shared collateral    {:.1f} quotes/s ({} in {:.2f} s)\n", cached.per_second(),
               cached.iterations, cached.seconds);
    fmt::print("peak RSS (VmHWM)     {} KiB\n", rss);
    fmt::print(
        "{{\"status\":\"{}\",\"cold_ms\":{:.4f},\"uncached_qps\":{:.2f},\"uncached_iterations\":{},"
        "\"cached_qps\":{:.2f},\"cached_iterations\":{},\"peak_rss_kib\":{},\"ru_maxrss_kib\":{}}}\n",
        status, cold_ms, uncached.per_second(), uncached.iterations, cached.per_second(), cached.iterations, rss,
        ru_maxrss_kib());
    return 0;
}
