// P-256 ECDSA (SHA-256) and ECDH vectors in Project Wycheproof's JSON schema, every case of each
// file, through the crypto layer's public P-256 API, for whichever engine this build has (meson
// option p256): "valid" must verify or agree on the shared secret, "invalid" must be refused,
// "acceptable" may go either way (counted) but an accepted ECDH must still give the right secret.
// A file that yields fewer cases than its numberOfTests fails, so nothing here can pass on an empty
// or cut file.
//
// The files come from tests/vectors/generate-p256-vectors.py, run by the build into
// DSTACK_P256_VECTORS: cases of the classes Wycheproof covers (values out of range, DER faults,
// the x(R) >= n comparison, invalid and unreduced points), computed with Python integers and
// checked with the openssl CLI. Wycheproof's own files (github.com/C2SP/wycheproof, Apache-2.0)
// are not part of the project; when $DSTACK_VECTORS/wycheproof/ holds them, they run as well.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "crypto-test-util.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/asn1.hpp"
#include "dstack/crypto/p256.hpp"

using namespace dstack;
using namespace dstack::crypto;

namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_file_size = 4 * 1024 * 1024;  // the largest used here is 420 kB
constexpr std::size_t max_items = 10000;

fs::path generated_file(const std::string& name) { return fs::path(DSTACK_P256_VECTORS) / name; }

std::optional<fs::path> wycheproof_file(const std::string& name) {
    fs::path path = dstack::test_vectors::vectors_dir() / "wycheproof" / name;
    std::error_code error;
    if (fs::exists(path, error)) return path;
    return std::nullopt;
}

template <typename T>
T need(Result<T> result, const std::string& what) {
    REQUIRE_MESSAGE(result.ok(), what << ": " << (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

// The counts one file gave.
struct Tally {
    std::size_t cases = 0;
    std::size_t valid_accepted = 0;
    std::size_t invalid_refused = 0;
    std::size_t acceptable_accepted = 0;
    std::size_t acceptable_refused = 0;
    std::size_t wrong = 0;  // a case whose outcome broke its expectation (each one also FAILed)
    // Refusals by why: inputs our API does not take at all are counted here, never skipped.
    std::map<std::string, std::size_t> refused_because;

    std::string summary() const {
        std::string text = fmt::format("{} cases ran: {} valid accepted, {} invalid refused, {} acceptable accepted, "
                                       "{} acceptable refused, {} wrong",
                                       cases, valid_accepted, invalid_refused, acceptable_accepted,
                                       acceptable_refused, wrong);
        for (const auto& [reason, count] : refused_because) text += fmt::format("\n  refused ({}): {}", reason, count);
        return text;
    }
};

// Reads one file and hands each test case, with its group, to `run_case`, which says whether the
// API accepted it; the expectation of the case's "result" is checked here.
template <typename RunCase>
void run_vectors(const fs::path& path, RunCase run_case) {
    const std::string name = path.string();
    auto text = need(read_text_file(path, max_file_size), "reading " + name);
    auto document = need(json::read_json(text, {max_file_size, 16}), "parsing " + name);
    auto root = need(document.root().object(), name);
    auto declared = need(root.uint_as<std::uint64_t>("numberOfTests"), name);
    auto groups = need(root.array("testGroups", max_items), name);

    Tally tally;
    std::uint64_t operations_before = p256_engine_operations();
    for (std::size_t g = 0; g < groups.size(); ++g) {
        auto group = need(groups[g].object(), name);
        auto tests = need(group.array("tests", max_items), name);
        for (std::size_t t = 0; t < tests.size(); ++t) {
            auto test = need(tests[t].object(), name);
            auto id = need(test.uint_as<std::uint64_t>("tcId"), name);
            auto comment = need(test.string("comment"), name);
            auto expected = need(test.string("result"), name);
            ++tally.cases;
            std::string reason;  // set by run_case when it refuses
            bool accepted = run_case(group, test, reason);
            if (!accepted) ++tally.refused_because[reason.empty() ? "unspecified" : reason];
            bool fine = true;
            if (expected == "valid") {
                fine = accepted;
                tally.valid_accepted += accepted;
            } else if (expected == "invalid") {
                fine = !accepted;
                tally.invalid_refused += !accepted;
            } else if (expected == "acceptable") {
                ++(accepted ? tally.acceptable_accepted : tally.acceptable_refused);
            } else {
                fine = false;
            }
            if (!fine) {
                ++tally.wrong;
                FAIL_CHECK(name << " tcId " << id << " (" << comment << "): expected " << expected << ", the "
                                << p256_engine() << " engine " << (accepted ? "accepted it" : "refused it (" + reason + ")"));
            }
        }
    }
    std::uint64_t operations = p256_engine_operations() - operations_before;
    MESSAGE(name << " with the " << p256_engine() << " engine: " << tally.summary() << "\n  engine operations: "
                 << operations);
    CHECK_MESSAGE(tally.cases > 0, name << ": no test case was read");
    CHECK_MESSAGE(tally.cases == declared, name << ": " << tally.cases << " cases read, the file declares " << declared);
    CHECK(tally.wrong == 0);
    // The cases went through the engine this build names: every accepted one took at least one
    // call into the OpenSSL driver, and the mbedTLS build has none.
    if (p256_engine() == "openssl") CHECK(operations >= tally.valid_accepted + tally.acceptable_accepted);
    else CHECK(operations == 0);
}

// The generated file always (a missing one fails in reading it), then Wycheproof's own when there.
template <typename RunCase>
void run_file(const std::string& name, RunCase run_case) {
    run_vectors(generated_file(name), run_case);
    if (auto wycheproof = wycheproof_file(name)) run_vectors(*wycheproof, run_case);
}

// The group's public key, checked once per group: its SubjectPublicKeyInfo must give the same point.
Bytes group_public_key(const json::Object& group) {
    auto key = need(group.object("publicKey"), "publicKey");
    Bytes point = need(key.hex("uncompressed"), "publicKey.uncompressed");
    Bytes spki = need(group.hex("publicKeyDer"), "publicKeyDer");
    auto from_spki = p256_public_key_from_spki(spki);
    CHECK_MESSAGE(from_spki.ok(), (from_spki.ok() ? "" : from_spki.error().message));
    if (from_spki) CHECK(*from_spki == point);
    return point;
}

// Wycheproof's private values are big-endian integers of any length (leading 00 for a sign bit,
// or fewer than 32 bytes for a small value); the API takes exactly 32 bytes.
Bytes scalar_32(Bytes value) {
    std::size_t skip = 0;
    while (skip < value.size() && value[skip] == 0) ++skip;
    value.erase(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(skip));
    REQUIRE_MESSAGE(value.size() <= 32, "private value longer than 32 bytes");
    Bytes scalar(32 - value.size(), 0);
    scalar.insert(scalar.end(), value.begin(), value.end());
    return scalar;
}

bool is_compressed_point(ByteView point) {
    return point.size() == 33 && (point[0] == 0x02 || point[0] == 0x03);
}

// The point inside an SPKI-like structure, however its algorithm is written, if it parses as
// SEQUENCE { SEQUENCE {...}, BIT STRING }: to tell a compressed point from other refusals.
std::optional<Bytes> point_in_spki(ByteView spki) {
    auto outer = der::read_single(spki, der::tag::sequence);
    if (!outer) return std::nullopt;
    der::Reader reader(*outer);
    if (!reader.read(der::tag::sequence)) return std::nullopt;
    auto bits = reader.read(der::tag::bit_string);
    if (!bits || bits->empty() || (*bits)[0] != 0 || !reader.at_end()) return std::nullopt;
    return Bytes(bits->begin() + 1, bits->end());
}

// One ECDH case: whether our API agreed on Wycheproof's shared secret. A secret that differs from
// the expected one is a failure whatever the case's result.
bool run_ecdh(const json::Object& test, ByteView peer_point, const std::string& refusal_if_bad_point,
              std::string& reason) {
    Bytes scalar = scalar_32(need(test.hex("private"), "private"));
    Bytes expected = need(test.hex("shared"), "shared");
    auto key = P256PrivateKey::from_scalar(scalar);
    if (!key) {
        reason = "private scalar refused";
        return false;
    }
    if (!refusal_if_bad_point.empty()) {
        reason = refusal_if_bad_point;
        return false;
    }
    auto shared = key->ecdh(peer_point);
    if (!shared) {
        reason = peer_point.size() == p256_public_key_size && peer_point[0] == 0x04
                     ? "refused by ECDH (point not on the curve, or a coordinate not below p)"
                     : "not a 65-byte uncompressed point";
        return false;
    }
    if (*shared != expected) {
        FAIL_CHECK("ECDH gave " << hex_encode(*shared) << ", expected " << hex_encode(expected));
        reason = "wrong shared secret";
        return false;
    }
    return true;
}

}  // namespace

TEST_CASE("crypto p256 Wycheproof ECDSA P-256 SHA-256, DER signatures") {
    run_file("ecdsa_secp256r1_sha256_test.json", [](const json::Object& group, const json::Object& test,
                                                    std::string& reason) {
        Bytes point = group_public_key(group);
        Bytes message = need(test.hex("msg"), "msg");
        Bytes signature = need(test.hex("sig"), "sig");
        if (p256_verify_der(point, message, signature)) return true;
        reason = p256_signature_der_to_raw(signature) ? "signature does not verify" : "not a DER signature we take";
        return false;
    });
}

TEST_CASE("crypto p256 Wycheproof ECDSA P-256 SHA-256, raw r||s (IEEE P1363) signatures") {
    run_file("ecdsa_secp256r1_sha256_p1363_test.json", [](const json::Object& group, const json::Object& test,
                                                          std::string& reason) {
        Bytes point = group_public_key(group);
        Bytes message = need(test.hex("msg"), "msg");
        Bytes signature = need(test.hex("sig"), "sig");
        if (!p256_verify(point, message, signature)) {
            reason = signature.size() == p256_signature_size ? "signature does not verify" : "not 64 bytes";
            return false;
        }
        // What verifies raw verifies in DER too.
        auto der = p256_signature_raw_to_der(signature);
        CHECK((der.ok() && p256_verify_der(point, message, *der)));
        return true;
    });
}

TEST_CASE("crypto p256 Wycheproof ECDH P-256, peer keys as SubjectPublicKeyInfo") {
    run_file("ecdh_secp256r1_test.json", [](const json::Object&, const json::Object& test, std::string& reason) {
        Bytes spki = need(test.hex("public"), "public");
        auto point = p256_public_key_from_spki(spki);
        std::string refusal;
        if (!point) {
            auto inner = point_in_spki(spki);
            refusal = inner && is_compressed_point(*inner)
                          ? "compressed point: the API takes only the 65-byte uncompressed point"
                          : "SPKI not in the one form the API takes (id-ecPublicKey, prime256v1, uncompressed point)";
        }
        return run_ecdh(test, point ? ByteView(*point) : ByteView(), refusal, reason);
    });
}

TEST_CASE("crypto p256 Wycheproof ECDH P-256, peer keys as raw points") {
    run_file("ecdh_secp256r1_ecpoint_test.json", [](const json::Object&, const json::Object& test, std::string& reason) {
        Bytes point = need(test.hex("public"), "public");
        std::string refusal;
        if (is_compressed_point(point)) refusal = "compressed point: the API takes only the 65-byte uncompressed point";
        return run_ecdh(test, point, refusal, reason);
    });
}
