#include "dstack/crypto/keccak.hpp"

#include <bit>
#include <cstdlib>

namespace dstack::crypto {
namespace {

constexpr std::uint64_t round_constants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

// Rotation offsets and lane order of the combined rho+pi step, walking the pi permutation from lane 1.
constexpr int rho[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};
constexpr int pi[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};

void keccak_f1600(std::array<std::uint64_t, 25>& a) {
    for (std::uint64_t rc : round_constants) {
        std::uint64_t c[5];
        for (int x = 0; x < 5; ++x) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; ++x) {
            std::uint64_t d = c[(x + 4) % 5] ^ std::rotl(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) a[y + x] ^= d;
        }
        std::uint64_t current = a[1];
        for (int i = 0; i < 24; ++i) {
            std::uint64_t next = a[pi[i]];
            a[pi[i]] = std::rotl(current, rho[i]);
            current = next;
        }
        for (int y = 0; y < 25; y += 5) {
            std::uint64_t row[5];
            for (int x = 0; x < 5; ++x) row[x] = a[y + x];
            for (int x = 0; x < 5; ++x) a[y + x] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5]);
        }
        a[0] ^= rc;
    }
}

// Lanes are little-endian 64-bit words.
void xor_byte(std::array<std::uint64_t, 25>& state, std::size_t position, std::uint8_t byte) {
    state[position / 8] ^= static_cast<std::uint64_t>(byte) << (8 * (position % 8));
}

}  // namespace

KeccakSponge::KeccakSponge(std::size_t digest_size) : digest_size_(digest_size), rate_(200 - 2 * digest_size) {
    // Only the three fixed sizes exist; anything else is a programming error.
    if (digest_size != 32 && digest_size != 48 && digest_size != 64) std::abort();
}

KeccakSponge& KeccakSponge::update(ByteView data) {
    for (std::uint8_t byte : data) {
        xor_byte(state_, offset_++, byte);
        if (offset_ == rate_) {
            keccak_f1600(state_);
            offset_ = 0;
        }
    }
    return *this;
}

Bytes KeccakSponge::finish() {
    xor_byte(state_, offset_, 0x01);
    xor_byte(state_, rate_ - 1, 0x80);
    keccak_f1600(state_);
    Bytes out(digest_size_);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(state_[i / 8] >> (8 * (i % 8)));
    state_ = {};
    offset_ = 0;
    return out;
}

Bytes keccak256(ByteView data) { return KeccakSponge(32).update(data).finish(); }
Bytes keccak384(ByteView data) { return KeccakSponge(48).update(data).finish(); }
Bytes keccak512(ByteView data) { return KeccakSponge(64).update(data).finish(); }

}  // namespace dstack::crypto
