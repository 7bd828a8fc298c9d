#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/keccak.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

namespace {
constexpr std::string_view msg448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr std::string_view msg896 =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
}  // namespace

TEST_CASE("crypto SHA-256 FIPS 180 vectors") {
    CHECK(hex_encode(sha256(as_bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hex_encode(sha256(as_bytes(msg448))) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(hex_encode(sha256(as_bytes(msg896))) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    CHECK(hex_encode(sha256({})) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("crypto SHA-384 FIPS 180 vectors") {
    CHECK(hex_encode(sha384(as_bytes("abc"))) ==
          "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
    CHECK(hex_encode(sha384(as_bytes(msg896))) ==
          "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039");
}

TEST_CASE("crypto SHA-512 FIPS 180 vectors") {
    CHECK(hex_encode(sha512(as_bytes("abc"))) ==
          "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
          "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    CHECK(hex_encode(sha512(as_bytes(msg896))) ==
          "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
          "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
}

TEST_CASE("crypto incremental hashing equals one-shot") {
    for (auto algorithm : {HashAlgorithm::sha256, HashAlgorithm::sha384, HashAlgorithm::sha512}) {
        Hasher hasher(algorithm);
        hasher.update(as_bytes(msg896.substr(0, 7))).update(as_bytes(msg896.substr(7, 100))).update(as_bytes(msg896.substr(107)));
        Bytes incremental = hasher.finish();
        CHECK(incremental == hash(algorithm, as_bytes(msg896)));
        CHECK(incremental.size() == digest_size(algorithm));
    }
    Hasher moved_from(HashAlgorithm::sha256);
    Hasher moved = std::move(moved_from);
    moved.update(as_bytes("abc"));
    CHECK(moved.finish() == sha256(as_bytes("abc")));
}

TEST_CASE("crypto Keccak-256 with original padding") {
    CHECK(hex_encode(keccak256({})) == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    CHECK(hex_encode(keccak256(as_bytes("abc"))) == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");

    // Inputs around the 136-byte rate boundary: incremental and one-shot agree.
    for (std::size_t size : {135u, 136u, 137u, 272u, 1000u}) {
        Bytes data(size);
        for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::uint8_t>(i * 7);
        Keccak256 hasher;
        hasher.update(ByteView(data).first(size / 3)).update(ByteView(data).subspan(size / 3));
        CHECK(hasher.finish() == keccak256(data));
    }
}
