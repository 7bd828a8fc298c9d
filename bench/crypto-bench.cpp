// Measures P-256 through our crypto layer (crypto/p256.hpp) the way its callers meet it: each
// operation is one public call, with whatever PSA key handling and engine dispatch it costs.
// bench/crypto compares the figures with `openssl speed` in the same run; this program only
// measures.
//
//   crypto-bench [SECONDS_PER_OPERATION]
//
// Rates are operations per CPU second of this thread (CLOCK_THREAD_CPUTIME_ID), so another
// process on a busy machine slows the run down but does not change the figure much. Prints
// readable lines, then one JSON line (the last line) for scripts.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"

namespace {

using dstack::Bytes;
using dstack::ByteView;
using dstack::crypto::P256PrivateKey;

double thread_cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

struct Rate {
    long operations = 0;
    double cpu_seconds = 0;
    double per_second() const { return cpu_seconds > 0 ? operations / cpu_seconds : 0; }
};

// Runs `operation` until `budget` CPU seconds have passed. The clock is read once per batch of 8:
// reading a CPU-time clock is a system call, not free next to an ECDH. An operation that fails
// ends the run, or the figure would time a shortcut instead of the real work.
template <typename Operation>
bool measure(std::string_view name, double budget, Rate& rate, Operation operation) {
    constexpr int batch = 8;
    const double start = thread_cpu_seconds();
    do {
        for (int i = 0; i < batch; ++i) {
            if (!operation()) {
                fmt::print(stderr, "crypto-bench: {} failed on operation {}\n", name, rate.operations);
                return false;
            }
            ++rate.operations;
        }
        rate.cpu_seconds = thread_cpu_seconds() - start;
    } while (rate.cpu_seconds < budget);
    return true;
}

bool parse_seconds(const char* text, double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    return *text && *end == '\0' && out > 0 && out <= 600;
}

Bytes fixed_scalar(std::uint8_t fill) {
    Bytes scalar(dstack::crypto::p256_scalar_size, fill);
    scalar[0] = 0x5a;  // well below n
    return scalar;
}

}  // namespace

int main(int argc, char** argv) {
    double budget = 2.0;
    if (argc > 2 || (argc == 2 && !parse_seconds(argv[1], budget))) {
        fmt::print(stderr, "usage: crypto-bench [SECONDS_PER_OPERATION (0 < S <= 600, default 2)]\n");
        return 2;
    }
    const std::string engine(dstack::crypto::p256_engine());

    // Fixed keys, so every run multiplies the same scalars; the signature is made once here
    // (ECDSA is randomized) and then verified over and over.
    auto own = P256PrivateKey::from_scalar(fixed_scalar(0x11));
    auto peer = P256PrivateKey::from_scalar(fixed_scalar(0x22));
    if (!own || !peer) {
        fmt::print(stderr, "crypto-bench: importing the fixed keys failed\n");
        return 1;
    }
    const std::string_view text = "dstack crypto-bench: a fixed message of modest length";
    const ByteView message(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    const Bytes digest = dstack::crypto::sha256(message);
    auto signature = own->sign(message);
    if (!signature) {
        fmt::print(stderr, "crypto-bench: signing failed: {}\n", signature.error().message);
        return 1;
    }
    const Bytes& public_key = own->public_key();
    const Bytes& peer_public_key = peer->public_key();

    // The operations must compute what they claim before their speed means anything: the
    // signature verifies and a changed one does not, a digest signature verifies over the
    // message, and both sides of the ECDH agree.
    Bytes tampered = *signature;
    tampered[40] ^= 0x01;
    auto digest_signature = own->sign_digest(digest);
    auto shared = own->ecdh(peer_public_key);
    auto shared_back = peer->ecdh(public_key);
    if (!dstack::crypto::p256_verify(public_key, message, *signature) ||
        dstack::crypto::p256_verify(public_key, message, tampered) || !digest_signature ||
        !dstack::crypto::p256_verify(public_key, message, *digest_signature) || !shared || !shared_back ||
        *shared != *shared_back) {
        fmt::print(stderr, "crypto-bench: the self-check of verify, sign or ECDH failed\n");
        return 1;
    }
    const Bytes expected_shared = *shared;

    Rate verify, sign, ecdh;
    if (!measure("verify", budget, verify, [&] { return dstack::crypto::p256_verify(public_key, message, *signature); }))
        return 1;
    if (!measure("sign", budget, sign, [&] { return own->sign_digest(digest).ok(); })) return 1;
    if (!measure("ecdh", budget, ecdh, [&] {
            auto secret = own->ecdh(peer_public_key);
            return secret && *secret == expected_shared;
        }))
        return 1;

    fmt::print("engine   {}\n", engine);
    fmt::print("verify   {:.1f} /s ({} in {:.2f} CPU s; p256_verify, message of {} bytes)\n", verify.per_second(),
               verify.operations, verify.cpu_seconds, message.size());
    fmt::print("sign     {:.1f} /s ({} in {:.2f} CPU s; P256PrivateKey::sign_digest)\n", sign.per_second(),
               sign.operations, sign.cpu_seconds);
    fmt::print("ecdh     {:.1f} /s ({} in {:.2f} CPU s; P256PrivateKey::ecdh)\n", ecdh.per_second(),
               ecdh.operations, ecdh.cpu_seconds);
    fmt::print(
        "{{\"engine\":\"{}\",\"clock\":\"thread_cputime\",\"verify_per_s\":{:.2f},\"verify_operations\":{},"
        "\"sign_per_s\":{:.2f},\"sign_operations\":{},\"ecdh_per_s\":{:.2f},\"ecdh_operations\":{},"
        "\"engine_operations\":{}}}\n",
        engine, verify.per_second(), verify.operations, sign.per_second(), sign.operations, ecdh.per_second(),
        ecdh.operations, dstack::crypto::p256_engine_operations());
    return 0;
}
