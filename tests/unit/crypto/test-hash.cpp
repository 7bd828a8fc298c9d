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

// Expected values from python3 hashlib (sha3_256/384/512).
TEST_CASE("crypto SHA3 FIPS 202 vectors") {
    CHECK(hex_encode(sha3_256({})) == "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    CHECK(hex_encode(sha3_256(as_bytes("abc"))) == "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
    CHECK(hex_encode(sha3_384({})) ==
          "0c63a75b845e4f7d01107d852e4c2485c51a50aaaa94fc61995e71bbee983a2ac3713831264adb47fb6bd1e058d5f004");
    CHECK(hex_encode(sha3_384(as_bytes("abc"))) ==
          "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25");
    CHECK(hex_encode(sha3_512({})) ==
          "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6"
          "15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26");
    CHECK(hex_encode(sha3_512(as_bytes("abc"))) ==
          "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e"
          "10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0");
}

// Published Keccak-384/512 values (original padding), also reproduced by an independent
// python3 sponge checked against hashlib's SHA3 with padding 0x06.
TEST_CASE("crypto Keccak-384 and Keccak-512 with original padding") {
    CHECK(hex_encode(keccak384({})) ==
          "2c23146a63a29acf99e73b88f8c24eaa7dc60aa771780ccc006afbfa8fe2479b2dd2b21362337441ac12b515911957ff");
    CHECK(hex_encode(keccak384(as_bytes("abc"))) ==
          "f7df1165f033337be098e7d288ad6a2f74409d7a60b49c36642218de161b1f99f8c681e4afaf31a34db29fb763e3c28e");
    CHECK(hex_encode(keccak512({})) ==
          "0eab42de4c3ceb9235fc91acffe746b29c29a8c366b7c60e4e67c466f36a4304"
          "c00fa9caf9d87976ba469bcbe06713b435f091ef2769fb160cdab33d3670680e");
    CHECK(hex_encode(keccak512(as_bytes("abc"))) ==
          "18587dc2ea106b9a1563e32b3312421ca164c7f1f07bc922a9c83d77cea3a1e5"
          "d0c69910739025372dc14ac9642629379540c17e2a65b19d77aa511a9d00bb96");

    // Around each rate boundary (104 and 72 bytes), expected values from the python3 sponge;
    // incremental and one-shot agree.
    struct Boundary {
        std::size_t digest, size;
        std::string_view expected;
    };
    const Boundary boundaries[] = {
        {48, 103, "6a08aaced3d3218cd35d8a0984598ce1f6919f3ed7de79e120245bfabcf4ff691f3c59af8b8aba79ccd92f78ce8abf0f"},
        {48, 104, "4bfaaba6f46deccac4a196aa9af49ac750628590c56f1953631c900b06f2e315c9baba98f0b45324a3527721ac812d9c"},
        {48, 105, "23bbf191f06855a0b787d570286ec8247b6e1549af239a11526f89ee6b33f295ec41871c2f753db84a966dcc4b3b7f34"},
        {64, 71, "2c909f186ffcbc6b9635ba2302e5b14329eb224b5239891cb4d1b834f48ef3bf"
                 "d0039122c36812b8ce04e3a04e5aaa2c0ba8941b81117b5c36a31adf46252495"},
        {64, 72, "4b0e210dfb56161d0823cbea14b1fa1fe333a4cbdeace97c7c9cdc533f6ad3b1"
                 "e044d69bca34443709f665b79e13b56cf2a25ba884a6e1f00f6c7a08ab9402b3"},
        {64, 73, "84c700e506688044f35e50fad42a7d3a2cd86b9bdb4cbc197e5e5761543b2b3d"
                 "d387164268cb21a215acd52ae98e4f58c3a8c8db3b559b3276fc0c0def54a045"},
        {64, 500, "1556221e519f432a84cc863be32dc096cea2a3d27f9ef53651a6a3adf60e3632"
                  "a0b20f74c18e3387fd4fc0f3e89db7a764724b8dba38d6b43b3548a7e4ac25fa"},
    };
    for (const auto& boundary : boundaries) {
        CAPTURE(boundary.size);
        Bytes data(boundary.size);
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 13);
        Bytes one_shot = boundary.digest == 48 ? keccak384(data) : keccak512(data);
        CHECK(hex_encode(one_shot) == boundary.expected);
        KeccakSponge sponge(boundary.digest);
        sponge.update(ByteView(data).first(data.size() / 3)).update(ByteView(data).subspan(data.size() / 3));
        CHECK(sponge.finish() == one_shot);
    }
}
