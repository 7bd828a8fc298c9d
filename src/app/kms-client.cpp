#include "dstack/app/kms-client.hpp"

#include <memory>

#include <fmt/format.h>

#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/secp256k1.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {
namespace {

namespace http = net::http;
constexpr std::size_t max_reply_bytes = 1024 * 1024;

asio::awaitable<Result<json::Document>> call(asio::any_io_executor executor, std::string base, std::string method,
                                             std::string body, net::tls::ClientConfig tls) {
    http::ClientOptions options;
    options.total_timeout = std::chrono::seconds(60);
    options.max_response_bytes = max_reply_bytes;
    options.tls_config = std::move(tls);
    std::string url = fmt::format("{}/{}?json", base, method);
    auto response = co_await http::post(executor, url, std::move(body), "application/json", options);
    if (!response) co_return response.error().context(fmt::format("KMS {} at {}", method, base));
    if (response->status != 200) {
        co_return make_error("KMS {} at {}: HTTP {}: {}", method, base, response->status, response->body.substr(0, 512));
    }
    auto document = json::read_json(response->body, {max_reply_bytes, 8});
    if (!document) co_return document.error().context(fmt::format("KMS {} reply", method));
    co_return std::move(*document);
}

Result<Bytes> sized_hex(const json::Object& object, std::string_view name, std::size_t size, bool empty_ok) {
    DSTACK_TRY(auto value, object.hex(name));
    if ((empty_ok && value.empty()) || value.size() == size) return value;
    return make_error("{}: {} bytes, expected {}", object.member_path(name), value.size(), size);
}

}  // namespace

std::string kms_prpc_base(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.size() < 5 || url.substr(url.size() - 5) != "/prpc") url += "/prpc";
    return url;
}

asio::awaitable<Result<TempCaCert>> kms_get_temp_ca_cert(asio::any_io_executor executor, std::string kms_url) {
    net::tls::ClientConfig tls;
    tls.verify_server = false;  // upstream's first call: its answer becomes the trust anchor
    tls.verify_hostname = false;
    auto document = co_await call(executor, kms_prpc_base(kms_url), "GetTempCaCert", "{}", tls);
    if (!document) co_return std::move(document).take_error();
    auto object = document->root().object();
    if (!object) co_return std::move(object).take_error();
    std::string pems[3];
    const char* names[3] = {"temp_ca_cert", "temp_ca_key", "ca_cert"};
    for (int i = 0; i < 3; ++i) {
        auto value = object->string(names[i]);
        if (!value) co_return value.error().context("GetTempCaCert reply");
        pems[i] = std::move(*value);
    }
    auto temp_cert = crypto::Certificate::from_pem(pems[0]);
    if (!temp_cert) co_return temp_cert.error().context("GetTempCaCert reply: temp_ca_cert");
    auto temp_key = crypto::P256PrivateKey::from_pem(pems[1]);
    if (!temp_key) co_return temp_key.error().context("GetTempCaCert reply: temp_ca_key");
    if (temp_cert->spki_der() != temp_key->spki_der())
        co_return make_error("GetTempCaCert reply: temp_ca_key is not the key of temp_ca_cert");
    auto ca = crypto::Certificate::from_pem(pems[2]);
    if (!ca) co_return ca.error().context("GetTempCaCert reply: ca_cert");
    if (!ca->is_ca()) co_return make_error("GetTempCaCert reply: ca_cert is not a CA certificate");
    co_return TempCaCert{std::move(pems[0]), std::move(pems[1]), std::move(pems[2]), std::move(*temp_cert), std::move(*temp_key),
                         std::move(*ca)};
}

Result<std::string> issue_ratls_client_certificate(const crypto::P256PrivateKey& key, const TempCaCert& temp,
                                                   Bytes attestation, UnixSeconds now) {
    TlsCertRequest request;
    request.subject = "RA-TLS TEMP Cert";
    request.special_usage.reset();
    request.attestation = std::move(attestation);
    return issue_tls_certificate(request, key, temp.temp_ca_key, temp.temp_ca_cert, now);
}

// The second connection of upstream's guests: only the root CA, the host name, and "kms:rpc".
static Result<net::tls::ClientConfig> kms_rpc_tls(const std::string& base, std::string root_ca_pem) {
    auto url = http::parse_url(base);
    if (!url) return url.error().context("KMS URL");
    net::tls::ClientConfig tls;
    tls.server_name = url->endpoint.host;
    tls.ca_pem = std::move(root_ca_pem);
    tls.verify_server_hook = [](const std::vector<Bytes>& chain) -> Result<void> {
        auto leaf = crypto::Certificate::from_der(chain.front());
        if (!leaf) return std::move(leaf).take_error();
        DSTACK_TRY(auto usage, leaf->dstack_extension(crypto::dstack_oid::special_usage));
        if (!usage || as_chars(*usage) != "kms:rpc")
            return make_error("the server certificate is not a KMS RPC certificate (no special usage \"kms:rpc\")");
        return {};
    };
    return tls;
}

asio::awaitable<Result<std::vector<std::string>>> kms_sign_cert(asio::any_io_executor executor, std::string kms_url,
                                                                std::string root_ca_pem, std::uint32_t api_version,
                                                                Bytes csr, Bytes signature, std::string vm_config) {
    std::string base = kms_prpc_base(kms_url);
    auto tls = kms_rpc_tls(base, std::move(root_ca_pem));
    if (!tls) co_return std::move(tls).take_error();
    std::string body = fmt::format(R"({{"api_version":{},"csr":"{}","signature":"{}","vm_config":"{}"}})", api_version,
                                   hex_encode(csr), hex_encode(signature), json_escape(vm_config));
    auto document = co_await call(executor, base, "SignCert", std::move(body), std::move(*tls));
    if (!document) co_return std::move(document).take_error();
    auto decode = [&]() -> Result<std::vector<std::string>> {
        DSTACK_TRY(auto object, document->root().object());
        DSTACK_TRY(auto list, object.array("certificate_chain", 8));
        std::vector<std::string> chain;
        for (std::size_t i = 0; i < list.size(); ++i) {
            DSTACK_TRY(auto pem, list[i].string());
            if (auto parsed = crypto::Certificate::from_pem(pem); !parsed)
                return parsed.error().context(fmt::format("$.certificate_chain[{}]", i));
            chain.push_back(std::move(pem));
        }
        if (chain.size() != 3) return make_error("$.certificate_chain: {} certificates, expected 3", chain.size());
        return chain;
    };
    auto chain = decode();
    if (!chain) co_return chain.error().context("SignCert reply");
    co_return std::move(*chain);
}

asio::awaitable<Result<KmsAppKeyResponse>> kms_get_app_key(asio::any_io_executor executor, std::string kms_url,
                                                           const TempCaCert& temp, crypto::P256PrivateKey client_key,
                                                           std::string client_cert_pem, std::string vm_config) {
    std::string base = kms_prpc_base(kms_url);
    auto rpc_tls = kms_rpc_tls(base, temp.ca_cert_pem);
    if (!rpc_tls) co_return std::move(rpc_tls).take_error();
    net::tls::ClientConfig tls = std::move(*rpc_tls);
    tls.client_certificate = net::tls::CertifiedKey{std::move(client_cert_pem), client_key.pkcs8_pem()};
    std::string body = fmt::format(R"({{"api_version":1,"vm_config":"{}"}})", json_escape(vm_config));
    auto document = co_await call(executor, base, "GetAppKey", std::move(body), std::move(tls));
    if (!document) co_return std::move(document).take_error();
    auto object = document->root().object();
    if (!object) co_return std::move(object).take_error();
    auto decode = [&]() -> Result<KmsAppKeyResponse> {
        KmsAppKeyResponse out;
        DSTACK_TRY(out.ca_cert, object->string("ca_cert"));
        DSTACK_TRY(out.disk_crypt_key, sized_hex(*object, "disk_crypt_key", 32, false));
        DSTACK_TRY(out.env_crypt_key, sized_hex(*object, "env_crypt_key", 32, true));
        DSTACK_TRY(out.k256_key, sized_hex(*object, "k256_key", 32, false));
        DSTACK_TRY(out.k256_signature, sized_hex(*object, "k256_signature", 65, true));
        DSTACK_TRY(out.gateway_app_id, object->string("gateway_app_id"));
        DSTACK_TRY(out.os_image_hash, object->hex("os_image_hash"));
        if (auto epoch = object->optional("key_epoch")) {
            DSTACK_TRY(out.key_epoch, epoch->uint());
        }
        return out;
    };
    auto decoded = decode();
    if (!decoded) co_return decoded.error().context("GetAppKey reply");
    co_return std::move(*decoded);
}

asio::awaitable<Result<EnvPublicKey>> kms_get_env_public_key(asio::any_io_executor executor, std::string kms_url,
                                                              Bytes app_id, std::optional<Bytes> root_k256_pubkey) {
    net::tls::ClientConfig tls;
    tls.verify_server = false;  // the signatures by the root k256 key are what is checked
    tls.verify_hostname = false;
    auto document = co_await call(executor, kms_prpc_base(kms_url), "GetAppEnvEncryptPubKey",
                                  fmt::format(R"({{"app_id":"{}"}})", hex_encode(app_id)), tls);
    if (!document) co_return std::move(document).take_error();
    auto object = document->root().object();
    if (!object) co_return std::move(object).take_error();
    auto decode = [&]() -> Result<EnvPublicKey> {
        EnvPublicKey out;
        DSTACK_TRY(out.public_key, sized_hex(*object, "public_key", 32, false));
        DSTACK_TRY(out.signature, sized_hex(*object, "signature", 65, true));
        DSTACK_TRY(out.timestamp, object->uint_as<std::uint64_t>("timestamp"));
        DSTACK_TRY(out.signature_v1, sized_hex(*object, "signature_v1", 65, true));
        return out;
    };
    auto key = decode();
    if (!key) co_return key.error().context("GetAppEnvEncryptPubKey reply");
    if (root_k256_pubkey) {
        if (auto ok = verify_env_public_key(*key, app_id, *root_k256_pubkey, system_now()); !ok) co_return std::move(ok).take_error();
    }
    co_return std::move(*key);
}

Result<void> verify_env_public_key(const EnvPublicKey& key, ByteView app_id, ByteView root_k256_pubkey, UnixSeconds now) {
    DSTACK_TRY(auto expected, crypto::secp256k1_compress_public_key(root_k256_pubkey));
    auto signed_by_root = [&](ByteView signature, std::optional<std::uint64_t> timestamp) {
        if (signature.size() != 65) return false;
        auto signer = crypto::secp256k1_recover(signature, env_public_key_digest(app_id, key.public_key, timestamp));
        return signer && *signer == expected;
    };
    auto age = now - static_cast<UnixSeconds>(key.timestamp);
    if (!key.signature_v1.empty() && age >= -60 && age <= 300 && signed_by_root(key.signature_v1, key.timestamp)) return {};
    if (signed_by_root(key.signature, std::nullopt)) return {};
    return make_error("the env public key is not signed by the KMS root key {} (or its timestamped signature is stale)",
                      hex_encode(expected));
}

}  // namespace dstack::app
