// The P-256 engine's edge cases through the crypto layer's public API, with the same expectations
// for both engines (meson option p256: OpenSSL's libcrypto behind mbedTLS's PSA driver slot, or
// mbedTLS's own code): malformed and off-curve points, out-of-range scalars and signatures, known
// answers, interop with the openssl CLI, other curves left to mbedTLS, and which engine answered.
// Expected values were computed independently (python3 integers, the curve's SEC 2 constants).
#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "crypto-test-util.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

namespace {

namespace fs = std::filesystem;

// The field prime p, the group order n, the generator G = (gx, gy), and 2G.
const std::string p_hex = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const std::string n_hex = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const std::string gx_hex = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
const std::string gy_hex = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
const std::string minus_gy_hex = "b01cbd1c01e58065711814b583f061e9d431cca994cea1313449bf97c840ae0a";  // p - gy
const std::string g2x_hex = "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978";
const std::string g2y_hex = "07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1";
// Points of the curve with a small coordinate, so that coordinate + p still fits 32 bytes:
// (0, y0), and (x5, 5).
const std::string y0_hex = "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4";
const std::string x5_hex = "d7325d7646cd60d80a92738ceb345f844cffaf35841022cab176f692de8de1d7";
const std::string five_plus_p_hex = "ffffffff00000001000000000000000000000001000000000000000000000004";

Bytes point(const std::string& x_hex, const std::string& y_hex) { return unhex("04" + x_hex + y_hex); }

Bytes scalar_of(std::uint8_t low) {
    Bytes scalar(32, 0);
    scalar[31] = low;
    return scalar;
}

// 32-byte big-endian a + b and a - b (mod 2^256): enough for n + 1 and n - s.
Bytes add(ByteView a, ByteView b) {
    Bytes out(32);
    unsigned carry = 0;
    for (std::size_t i = 32; i-- > 0;) {
        unsigned sum = unsigned{a[i]} + unsigned{b[i]} + carry;
        out[i] = static_cast<std::uint8_t>(sum);
        carry = sum >> 8;
    }
    return out;
}

Bytes subtract(ByteView a, ByteView b) {
    Bytes out(32);
    unsigned borrow = 0;
    for (std::size_t i = 32; i-- > 0;) {
        unsigned difference = unsigned{a[i]} - unsigned{b[i]} - borrow;
        out[i] = static_cast<std::uint8_t>(difference);
        borrow = (difference >> 8) & 1;
    }
    return out;
}

// Points that are not a P-256 public key in the one form the API takes, each with why.
struct BadPoint {
    std::string why;
    Bytes encoded;
};

std::vector<BadPoint> bad_points(const Bytes& good) {
    Bytes off_curve = good;
    off_curve[64] ^= 0x01;
    Bytes x_and_y(good.begin() + 1, good.end());
    auto prefixed = [&](std::uint8_t prefix) { return concat({Bytes{prefix}, x_and_y}); };
    return {
        {"not on the curve (y changed)", off_curve},
        {"the generator with y + 1", point(gx_hex, gy_hex.substr(0, 63) + "6")},  // gy ends in 5
        {"x = p (the point (0, y0) with x not reduced)", point(p_hex, y0_hex)},
        {"y = p + 5 (the point (x5, 5) with y not reduced)", point(x5_hex, five_plus_p_hex)},
        {"x = 2^256 - 1", point(std::string(64, 'f'), gy_hex)},
        {"prefix 02 on 65 bytes", prefixed(0x02)},
        {"prefix 03 on 65 bytes", prefixed(0x03)},
        {"prefix 06 (hybrid) on 65 bytes", prefixed(0x06)},
        {"prefix 07 (hybrid) on 65 bytes", prefixed(0x07)},
        {"prefix 00 on 65 bytes", prefixed(0x00)},
        {"the point at infinity (00)", Bytes{0x00}},
        {"64 bytes without prefix", x_and_y},
        {"66 bytes", concat({good, Bytes{0x00}})},
        {"64 bytes, cut", Bytes(good.begin(), good.end() - 1)},
        {"compressed (33 bytes)", concat({Bytes{static_cast<std::uint8_t>(0x02 | (good[64] & 1))},
                                          ByteView(good).subspan(1, 32)})},
        {"empty", Bytes{}},
        {"all zero coordinates", concat({Bytes{0x04}, Bytes(64, 0)})},
    };
}

struct TempDir {
    fs::path path;
    TempDir() {
        char pattern[] = "/tmp/dstack-p256-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
    std::string write(const std::string& name, ByteView content) const {
        REQUIRE(write_file_atomic(path / name, content, 0600).ok());
        return file(name);
    }
};

std::string read_text(const std::string& path) {
    auto text = read_text_file(path, 1 << 20);
    REQUIRE_MESSAGE(text.ok(), path);
    return *text;
}

Certificate self_signed(const P256PrivateKey& key, const std::string& name) {
    CertificateSpec spec;
    spec.subject = {"Dstack", name};
    spec.not_before = system_now() - 3600;
    spec.not_after = system_now() + 86400;
    spec.is_ca = true;
    spec.key_usage = key_usage::digital_signature | key_usage::key_cert_sign;
    auto der = write_self_signed_certificate(spec, key);
    REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));
    auto certificate = Certificate::from_der(*der);
    REQUIRE(certificate.ok());
    return *certificate;
}

}  // namespace

TEST_CASE("crypto p256 engine: the build's engine is the one named") {
    CHECK(p256_engine() == DSTACK_P256_ENGINE);
}

TEST_CASE("crypto p256 engine: malformed and off-curve public keys are refused everywhere") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes message = to_bytes("edge cases");
    auto signature = key->sign(message);
    REQUIRE(signature.ok());
    REQUIRE(p256_verify(key->public_key(), message, *signature));
    auto der_signature = p256_signature_raw_to_der(*signature);
    REQUIRE(der_signature.ok());

    // The unreduced encodings above stand for real points: in their canonical form they are taken.
    for (const Bytes& fine : {point("0000000000000000000000000000000000000000000000000000000000000000", y0_hex),
                              point(x5_hex, "0000000000000000000000000000000000000000000000000000000000000005"),
                              point(gx_hex, minus_gy_hex), point(g2x_hex, g2y_hex)}) {
        CAPTURE(hex_encode(fine));
        auto shared = key->ecdh(fine);
        CHECK(shared.ok());
        CHECK(p256_spki_from_public_key(fine).ok());
        CHECK_FALSE(p256_verify(fine, message, *signature));  // a valid key, just not the signer's
    }

    for (const auto& bad : bad_points(key->public_key())) {
        CAPTURE(bad.why);
        CHECK_FALSE(p256_verify(bad.encoded, message, *signature));
        CHECK_FALSE(p256_verify_der(bad.encoded, message, *der_signature));
        CHECK_FALSE(key->ecdh(bad.encoded).ok());
        // SPKI encoding checks the form only (65 bytes, 04); the points above with that form are
        // refused as soon as they are used.
        if (bad.encoded.size() != p256_public_key_size || bad.encoded[0] != 0x04) {
            CHECK_FALSE(p256_spki_from_public_key(bad.encoded).ok());
            CHECK_FALSE(p256_public_key_from_spki(concat({unhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"),
                                                          bad.encoded})).ok());
        }
    }
}

TEST_CASE("crypto p256 engine: a certificate whose key is not a curve point does not load") {
    // mbedTLS's X.509 parser checks the key with its own ECP code in both builds (with MBEDTLS_ECP_C
    // on, PK keeps EC keys in mbedTLS's own form and does not import them into PSA at parse time):
    // the same refusals either way, and a change there would show here.
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes der = self_signed(*key, "edge").der();
    auto at = std::search(der.begin(), der.end(), key->public_key().begin(), key->public_key().end());
    REQUIRE(at != der.end());
    for (const auto& bad : bad_points(key->public_key())) {
        if (bad.encoded.size() != p256_public_key_size) continue;  // would change the DER lengths
        CAPTURE(bad.why);
        Bytes patched = der;
        std::copy(bad.encoded.begin(), bad.encoded.end(), patched.begin() + (at - der.begin()));
        CHECK_FALSE(Certificate::from_der(patched).ok());
    }
    CHECK(Certificate::from_der(der).ok());
}

TEST_CASE("crypto p256 engine: private scalars 0, n, n + 1 and 2^256 - 1 are refused, 1, 2 and n - 1 known") {
    Bytes n = unhex(n_hex);
    CHECK_FALSE(P256PrivateKey::from_scalar(Bytes(32, 0)).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(n).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(add(n, scalar_of(1))).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(Bytes(32, 0xff)).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(unhex(p_hex)).ok());  // p > n
    CHECK_FALSE(P256PrivateKey::from_scalar(Bytes(31, 0x01)).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(concat({Bytes{0x00}, scalar_of(1)})).ok());

    auto one = P256PrivateKey::from_scalar(scalar_of(1));
    auto two = P256PrivateKey::from_scalar(scalar_of(2));
    auto last = P256PrivateKey::from_scalar(subtract(n, scalar_of(1)));
    REQUIRE((one.ok() && two.ok() && last.ok()));
    CHECK(one->public_key() == point(gx_hex, gy_hex));
    CHECK(two->public_key() == point(g2x_hex, g2y_hex));
    CHECK(last->public_key() == point(gx_hex, minus_gy_hex));  // (n - 1)G = -G
    CHECK(last->scalar() == subtract(n, scalar_of(1)));

    // ECDH known answers: the x-coordinate of d * Q.
    CHECK(hex_encode(*one->ecdh(point(gx_hex, gy_hex))) == gx_hex);
    CHECK(hex_encode(*two->ecdh(point(gx_hex, gy_hex))) == g2x_hex);
    CHECK(hex_encode(*one->ecdh(point(g2x_hex, g2y_hex))) == g2x_hex);
    CHECK(hex_encode(*last->ecdh(point(gx_hex, gy_hex))) == gx_hex);
    // And both ways with random keys.
    auto alice = P256PrivateKey::generate();
    auto bob = P256PrivateKey::generate();
    REQUIRE((alice.ok() && bob.ok()));
    CHECK(*alice->ecdh(bob->public_key()) == *bob->ecdh(alice->public_key()));

    // Keys signed with at the range's ends verify.
    for (const P256PrivateKey* signer : {&*one, &*last}) {
        auto signature = signer->sign(as_bytes("ends of the range"));
        REQUIRE(signature.ok());
        CHECK(p256_verify(signer->public_key(), as_bytes("ends of the range"), *signature));
    }
}

TEST_CASE("crypto p256 engine: signatures with r or s of 0, n or more are refused") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes message = to_bytes("range checks");
    auto signature = key->sign(message);
    REQUIRE(signature.ok());
    Bytes r(signature->begin(), signature->begin() + 32), s(signature->begin() + 32, signature->end());
    Bytes n = unhex(n_hex);
    Bytes zero(32, 0), n_plus_1 = add(n, scalar_of(1)), all_ones(32, 0xff), p = unhex(p_hex);
    REQUIRE(p256_verify(key->public_key(), message, concat({r, s})));

    for (const Bytes* bad : {&zero, &n, &n_plus_1, &p, &all_ones}) {
        CAPTURE(hex_encode(*bad));
        CHECK_FALSE(p256_verify(key->public_key(), message, concat({*bad, s})));
        CHECK_FALSE(p256_verify(key->public_key(), message, concat({r, *bad})));
        auto der_r = p256_signature_raw_to_der(concat({*bad, s}));
        if (der_r) CHECK_FALSE(p256_verify_der(key->public_key(), message, *der_r));
        auto der_s = p256_signature_raw_to_der(concat({r, *bad}));
        if (der_s) CHECK_FALSE(p256_verify_der(key->public_key(), message, *der_s));
    }
    CHECK_FALSE(p256_verify(key->public_key(), message, concat({zero, zero})));
    // r and s reduced or shifted by n: the same values mod n, refused because they are out of range.
    CHECK_FALSE(p256_verify(key->public_key(), message, concat({r, add(s, n)})));
    // ECDSA has no low-s rule: (r, n - s) is the same signature for both engines.
    CHECK(p256_verify(key->public_key(), message, concat({r, subtract(n, s)})));
    // Wrong sizes.
    CHECK_FALSE(p256_verify(key->public_key(), message, ByteView(*signature).first(63)));
    CHECK_FALSE(p256_verify(key->public_key(), message, concat({*signature, Bytes{0}})));
    CHECK_FALSE(p256_verify(key->public_key(), message, Bytes{}));
}

TEST_CASE("crypto p256 engine: signatures round-trip, and bind key and message") {
    auto alice = P256PrivateKey::generate();
    auto bob = P256PrivateKey::generate();
    REQUIRE((alice.ok() && bob.ok()));
    for (int i = 0; i < 20; ++i) {
        Bytes message = to_bytes("message " + std::to_string(i));
        auto raw = alice->sign(message);
        auto der = alice->sign_der(message);
        auto digest = alice->sign_digest(sha256(message));
        REQUIRE((raw.ok() && der.ok() && digest.ok()));
        CHECK(p256_verify(alice->public_key(), message, *raw));
        CHECK(p256_verify_der(alice->public_key(), message, *der));
        CHECK(p256_verify(alice->public_key(), message, *digest));
        CHECK_FALSE(p256_verify(bob->public_key(), message, *raw));
        CHECK_FALSE(p256_verify_der(bob->public_key(), message, *der));
        CHECK_FALSE(p256_verify(alice->public_key(), to_bytes("message " + std::to_string(i + 1)), *raw));
        if (i == 0) CHECK(*raw != *alice->sign(message));  // randomized ECDSA
    }
    // Enough signatures that some r or s has leading zero octets (each about 1 in 256), which the
    // raw form keeps and DER drops: both forms must carry them.
    int with_leading_zero = 0;
    for (int i = 0; i < 250; ++i) {
        Bytes message = to_bytes("round trip " + std::to_string(i));
        auto raw = alice->sign(message);
        REQUIRE(raw.ok());
        with_leading_zero += (*raw)[0] == 0 || (*raw)[32] == 0;
        auto der = p256_signature_raw_to_der(*raw);
        REQUIRE(der.ok());
        CHECK(*p256_signature_der_to_raw(*der) == *raw);
        CHECK(p256_verify(alice->public_key(), message, *raw));
        CHECK(p256_verify_der(alice->public_key(), message, *der));
    }
    MESSAGE(with_leading_zero << " of 250 signatures had r or s below 2^248");
}

TEST_CASE("crypto p256 engine: signatures interoperate with the openssl CLI") {
    if (!test::have_openssl()) return;
    TempDir dir;
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes message = to_bytes("signed here, verified by openssl");
    auto signature = key->sign_der(message);
    REQUIRE(signature.ok());
    std::string public_pem = pem_encode("PUBLIC KEY", key->spki_der());
    auto verified = test::run_command("openssl dgst -sha256 -verify " + dir.write("public.pem", as_bytes(public_pem)) +
                                      " -signature " + dir.write("ours.sig", *signature) + " " +
                                      dir.write("message", message));
    CHECK_MESSAGE(verified.status == 0, verified.output);
    CHECK(verified.output.find("Verified OK") != std::string::npos);

    auto made = test::run_command("openssl ecparam -name prime256v1 -genkey -noout -out " + dir.file("theirs.key") +
                                  " && openssl dgst -sha256 -sign " + dir.file("theirs.key") + " -out " +
                                  dir.file("theirs.sig") + " " + dir.file("message"));
    REQUIRE_MESSAGE(made.status == 0, made.output);
    auto theirs = P256PrivateKey::from_pem(read_text(dir.file("theirs.key")));
    REQUIRE(theirs.ok());
    auto their_signature = read_file(dir.file("theirs.sig"), 1024);
    REQUIRE(their_signature.ok());
    CHECK(p256_verify_der(theirs->public_key(), message, *their_signature));
    CHECK_FALSE(p256_verify_der(key->public_key(), message, *their_signature));
}

TEST_CASE("crypto p256 engine: a P-384 certificate chain is verified by mbedTLS, not the P-256 engine") {
    if (!test::have_openssl()) return;
    TempDir dir;
    const char* script = R"(set -e
cd "$1"
for ca in ca other; do
  openssl ecparam -name secp384r1 -genkey -noout -out $ca.key
  openssl req -x509 -new -key $ca.key -sha384 -subj "/CN=dstack P-384 $ca" -days 2 -out $ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
done
openssl ecparam -name secp384r1 -genkey -noout -out leaf.key
openssl req -new -key leaf.key -subj "/CN=p384.test" -out leaf.csr
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:p384.test\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha384 -days 2 -extfile leaf.ext -out leaf.pem
)";
    auto script_path = dir.write("make.sh", as_bytes(script));
    auto made = test::run_command("sh " + script_path + " " + dir.path.string());
    REQUIRE_MESSAGE(made.status == 0, made.output);
    auto ca = Certificate::from_pem(read_text(dir.file("ca.pem")));
    auto other = Certificate::from_pem(read_text(dir.file("other.pem")));
    auto leaf = Certificate::from_pem(read_text(dir.file("leaf.pem")));
    REQUIRE((ca.ok() && other.ok() && leaf.ok()));
    CHECK_FALSE(leaf->p256_public_key().ok());

    std::uint64_t before = p256_engine_operations();
    auto verified = verify_certificate_chain({*leaf}, {*ca}, "p384.test");
    CHECK_MESSAGE(verified.ok(), (verified.ok() ? "" : verified.error().message));
    CHECK_FALSE(verify_certificate_chain({*leaf}, {*other}, "p384.test").ok());
    Bytes tampered = leaf->der();
    tampered[tampered.size() - 2] ^= 0x01;  // inside the signature's s
    auto tampered_leaf = Certificate::from_der(tampered);
    REQUIRE(tampered_leaf.ok());
    CHECK_FALSE(verify_certificate_chain({*tampered_leaf}, {*ca}, "p384.test").ok());
    // Other curves are mbedTLS's own: the OpenSSL driver served none of this.
    CHECK(p256_engine_operations() == before);
}

TEST_CASE("crypto p256 engine: P-256 signatures over SHA-384 and SHA-512 digests (truncated to 256 bits)") {
    // ECDSA takes the digest's leftmost 256 bits: what mbedTLS does, and what the driver must do
    // when mbedTLS's X.509 code hands it a 48- or 64-byte digest.
    if (!test::have_openssl()) return;
    TempDir dir;
    const char* script = R"(set -e
cd "$1"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha384 -subj "/CN=dstack P-256 SHA-384 CA" -days 2 -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
openssl req -new -key leaf.key -subj "/CN=sha.test" -out leaf.csr
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:sha.test\n' > leaf.ext
for digest in sha384 sha512; do
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -$digest -days 2 -extfile leaf.ext -out $digest.pem
done
)";
    auto made = test::run_command("sh " + dir.write("make.sh", as_bytes(script)) + " " + dir.path.string());
    REQUIRE_MESSAGE(made.status == 0, made.output);
    auto ca = Certificate::from_pem(read_text(dir.file("ca.pem")));
    REQUIRE(ca.ok());
    for (const char* digest : {"sha384", "sha512"}) {
        CAPTURE(digest);
        auto leaf = Certificate::from_pem(read_text(dir.file(std::string(digest) + ".pem")));
        REQUIRE(leaf.ok());
        std::uint64_t before = p256_engine_operations();
        auto verified = verify_certificate_chain({*leaf}, {*ca}, "sha.test");
        CHECK_MESSAGE(verified.ok(), (verified.ok() ? "" : verified.error().message));
        if (p256_engine() == "openssl") CHECK(p256_engine_operations() > before);
        Bytes tampered = leaf->der();
        tampered[tampered.size() - 2] ^= 0x01;  // inside the signature's s
        auto tampered_leaf = Certificate::from_der(tampered);
        REQUIRE(tampered_leaf.ok());
        CHECK_FALSE(verify_certificate_chain({*tampered_leaf}, {*ca}, "sha.test").ok());
    }
}

TEST_CASE("crypto p256 engine: the configured engine answers p256_verify and X.509 chain checks") {
    bool openssl = p256_engine() == "openssl";
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes message = to_bytes("who answered?");
    auto signature = key->sign(message);
    REQUIRE(signature.ok());

    std::uint64_t before = p256_engine_operations();
    CHECK(p256_verify(key->public_key(), message, *signature));
    std::uint64_t after_verify = p256_engine_operations();

    // A P-256 chain made by our writer, verified by mbedTLS's X.509 code.
    auto ca_key = P256PrivateKey::generate();
    auto leaf_key = P256PrivateKey::generate();
    REQUIRE((ca_key.ok() && leaf_key.ok()));
    Certificate ca = self_signed(*ca_key, "engine CA");
    CertificateSpec spec;
    spec.subject.common_name = "engine.test";
    spec.not_before = system_now() - 3600;
    spec.not_after = system_now() + 86400;
    spec.subject_alt_names = {"engine.test"};
    auto leaf_der = write_certificate(spec, leaf_key->spki_der(), *ca_key, ca);
    REQUIRE(leaf_der.ok());
    auto leaf = Certificate::from_der(*leaf_der);
    REQUIRE(leaf.ok());
    std::uint64_t before_chain = p256_engine_operations();
    CHECK(verify_certificate_chain({*leaf}, {ca}, "engine.test").ok());
    std::uint64_t after_chain = p256_engine_operations();
    CHECK_FALSE(verify_certificate_chain({*leaf}, {self_signed(*leaf_key, "not the CA")}, "engine.test").ok());

    MESSAGE("engine " << p256_engine() << ": p256_verify took " << after_verify - before
                      << " driver operations, a P-256 chain verification " << after_chain - before_chain);
    if (openssl) {
        CHECK(after_verify > before);
        CHECK(after_chain > before_chain);
    } else {
        CHECK(p256_engine() == "mbedtls");
        CHECK(p256_engine_operations() == 0);
    }
}
