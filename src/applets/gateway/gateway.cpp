#include "gateway.hpp"

#include <algorithm>
#include <filesystem>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/base/base64.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/aes-gcm.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/crypto/x25519.hpp"
#include "dstack/net/wireguard-uapi.hpp"
#include "proxy.hpp"

namespace dstack::applets::gateway {
namespace {

constexpr std::string_view instance_prefix = "inst/";
constexpr std::string_view certificate_prefix = "cert/";
constexpr std::string_view node_prefix = "node/";
constexpr UnixSeconds self_signed_renew_before = 30LL * 86400;
// The path the seal key is derived under: every node of one gateway app gets the same key from
// its KMS, and no other app can.
constexpr std::string_view seal_key_path = "dstack-gateway/cluster-store/certificate-keys";

std::string certificate_key(const std::string& domain, CertificateSource source) {
    return fmt::format("cert/{}/{}", domain, source_name(source));
}

std::optional<CertificateSource> source_of(std::string_view name) {
    if (name == "acme") return CertificateSource::acme;
    if (name == "static") return CertificateSource::static_file;
    if (name == "self-signed") return CertificateSource::self_signed;
    return std::nullopt;
}

std::string encode_node(const NodeInfo& node) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "id");
    out.Uint(node.id);
    json::key(out, "uuid");
    json::string(out, node.uuid_hex);
    json::key(out, "url");
    json::string(out, node.url);
    json::key(out, "wg_public_key");
    json::string(out, node.wg_public_key);
    json::key(out, "wg_ip");
    json::string(out, node.wg_ip);
    json::key(out, "wg_endpoint");
    json::string(out, node.wg_endpoint);
    json::key(out, "last_seen");
    out.Int64(node.last_seen);
    json::key(out, "down");
    out.Bool(node.down);
    out.EndObject();
    return buffer.GetString();
}

Result<NodeInfo> decode_node(std::string_view text) {
    DSTACK_TRY(auto document, json::read_json(text, {64 * 1024, 4}));
    DSTACK_TRY(auto object, document.root().object());
    NodeInfo node;
    DSTACK_TRY(node.id, object.uint_as<std::uint32_t>("id"));
    DSTACK_TRY(node.uuid_hex, object.string("uuid"));
    DSTACK_TRY(node.url, object.string("url"));
    DSTACK_TRY(node.wg_public_key, object.string("wg_public_key"));
    DSTACK_TRY(node.wg_ip, object.string("wg_ip"));
    DSTACK_TRY(node.wg_endpoint, object.string("wg_endpoint"));
    DSTACK_TRY(auto seen, object.uint_as<std::uint64_t>("last_seen"));
    node.last_seen = static_cast<UnixSeconds>(std::min<std::uint64_t>(seen, 1ULL << 62));
    DSTACK_TRY(node.down, object.boolean("down"));
    return node;
}

asio::awaitable<void> sleep_for(asio::any_io_executor executor, std::chrono::milliseconds duration) {
    asio::steady_timer timer(executor, duration);
    std::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

Result<std::string> read_wg_private_key(const Settings& settings) {
    if (!settings.wg_private_key.empty()) return settings.wg_private_key;
    // As upstream's entrypoint: one key per node, made once and kept in the data directory.
    auto path = std::filesystem::path(settings.data_dir) / "wg.key";
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
        DSTACK_TRY(auto bytes, read_file(path, 1024));
        std::string text(bytes.begin(), bytes.end());
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
        return text;
    }
    auto pair = crypto::x25519_generate();
    // WireGuard clamps its private keys; store them clamped as `wg genkey` does.
    pair.private_key[0] &= 248;
    pair.private_key[31] = static_cast<std::uint8_t>((pair.private_key[31] & 127) | 64);
    std::string text = base64_encode(pair.private_key);
    std::string line = text + "\n";
    DSTACK_CHECK(write_file_atomic(path, ByteView(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()), 0600));
    return text;
}

}  // namespace

Gateway::Gateway(Settings settings) : settings_(std::move(settings)) {}

Gateway::~Gateway() { stop(); }

asio::awaitable<Result<std::shared_ptr<Gateway>>> Gateway::create(Settings settings, asio::any_io_executor executor) {
    std::shared_ptr<Gateway> gateway(new Gateway(std::move(settings)));
    gateway->executor_ = executor;
    auto result = co_await gateway->load(executor);
    if (!result) co_return std::move(result).take_error();
    co_return gateway;
}

asio::awaitable<Result<void>> Gateway::load(asio::any_io_executor executor) {
    auto& s = settings_;
    std::error_code ec;
    std::filesystem::create_directories(s.data_dir, ec);
    if (ec) co_return make_error("data directory {}: {}", s.data_dir, ec.message());

    app::WgNetworkConfig network;
    network.ip_cidr = s.wg_ip;
    network.reserved_nets = s.wg_reserved_net;
    network.client_ip_range = s.wg_client_ip_range;
    if (auto valid = app::validate_wg_network(network); !valid) co_return valid.error().context("[core.wg]");
    registry_ = std::make_shared<InstanceRegistry>(network, s.node_id);
    certificates_ = std::make_shared<CertificateStore>();

    if (s.wg_enabled) {
        auto key = read_wg_private_key(s);
        if (!key) co_return key.error().context("WireGuard private key");
        s.wg_private_key = *key;
        auto raw = base64_decode(s.wg_private_key);
        if (!raw || raw->size() != 32) co_return make_error("WireGuard private key: not 32 bytes of base64");
        auto public_key = crypto::x25519_public_key(*raw);
        if (!public_key) co_return public_key.error().context("WireGuard private key");
        std::string derived = base64_encode(*public_key);
        if (!s.wg_public_key.empty() && s.wg_public_key != derived) {
            co_return make_error("[core.wg] public_key {} is not the private key's ({})", s.wg_public_key, derived);
        }
        s.wg_public_key = derived;
        std::string socket = s.wg_uapi_socket.empty() ? "/var/run/wireguard/" + s.wg_interface + ".sock" : s.wg_uapi_socket;
        wireguard_ = std::make_unique<net::WireGuardDevice>(socket);
    }

    // The seal key for certificate keys in the store: from the KMS through the guest agent, or a
    // file for hosts without one. Neither: keys are never stored (each node makes its own).
    if (!s.agent_address.empty()) agent_.emplace(s.agent_address);
    if (!s.seal_key_file.empty()) {
        auto bytes = read_file(s.seal_key_file, 1024);
        if (!bytes) co_return bytes.error().context("seal key file");
        std::string text(bytes->begin(), bytes->end());
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
        auto key = hex_decode(text);
        if (!key || key->size() != 32) co_return make_error("seal key file {}: expected 64 hex digits", s.seal_key_file);
        seal_key_ = std::move(*key);
    } else if (agent_) {
        auto key = co_await agent_->get_key(executor, std::string(seal_key_path), "aes-256-gcm");
        if (!key) co_return key.error().context("the seal key for certificate keys (GetKey through the guest agent)");
        seal_key_ = std::move(*key);
    } else {
        log::warn("no seal key (--seal-key-file or --agent): certificate keys are not stored; each node keeps its own "
                  "self-signed certificate in memory");
    }

    store_strand_.emplace(asio::make_strand(executor));
    if (!s.etcd_endpoints.empty()) {
        app::EtcdOptions options;
        options.endpoints = s.etcd_endpoints;
        options.key_prefix = s.etcd_prefix;
        auto store = app::make_etcd_store(*store_strand_, options);
        if (!store) co_return store.error().context("etcd");
        store_ = std::move(*store);
    } else {
        auto store = app::make_local_store(*store_strand_, std::filesystem::path(s.data_dir) / "state.json");
        if (!store) co_return std::move(store).take_error();
        store_ = std::move(*store);
    }
    log::info("state: {}", store_->description());

    // This node's identity: a uuid made once, so a reused node id is recognised.
    auto uuid_path = std::filesystem::path(s.data_dir) / "node_uuid";
    if (std::filesystem::exists(uuid_path, ec)) {
        auto bytes = read_file(uuid_path, 256);
        if (!bytes) co_return std::move(bytes).take_error();
        uuid_hex_.assign(bytes->begin(), bytes->end());
        while (!uuid_hex_.empty() && std::isspace(static_cast<unsigned char>(uuid_hex_.back()))) uuid_hex_.pop_back();
    } else {
        uuid_hex_ = hex_encode(crypto::random_bytes(16));
        std::string line = uuid_hex_ + "\n";
        auto written = write_file_atomic(uuid_path, ByteView(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()), 0600);
        if (!written) co_return std::move(written).take_error();
    }

    // What the store holds: instances, nodes, certificates.
    auto read_revision = co_await on_store(store_->revision());
    if (!read_revision) co_return read_revision.error().context("the store's revision");
    std::int64_t revision = *read_revision;
    auto instances = co_await on_store(store_->list(std::string(instance_prefix)));
    if (!instances) co_return instances.error().context("loading instances");
    for (const auto& entry : *instances) {
        auto record = decode_instance(entry.value);
        if (!record) {
            log::warn("store: {}: {} (skipped)", entry.key, record.error().message);
            continue;
        }
        registry_->apply(*record);
    }
    auto nodes = co_await on_store(store_->list(std::string(node_prefix)));
    if (!nodes) co_return nodes.error().context("loading gateway nodes");
    for (const auto& entry : *nodes) {
        auto node = decode_node(entry.value);
        if (!node) continue;
        if (node->id == s.node_id && node->uuid_hex != uuid_hex_) {
            co_return make_error("node id {} is already used by another gateway node (uuid {}, ours {}): give each node "
                                 "its own node id",
                                 s.node_id, node->uuid_hex, uuid_hex_);
        }
        std::lock_guard lock(nodes_mutex_);
        nodes_[node->id] = *node;
    }
    auto published = co_await publish_self(executor);
    if (!published) co_return published;

    // Certificates: the operator's static file, then what the store has, then the self-signed one.
    if (!s.cert_chain_file.empty() || !s.cert_key_file.empty()) {
        if (s.base_domain.empty()) co_return make_error("cert_chain/cert_key need base_domain");
        auto chain = read_file(s.cert_chain_file, 1024 * 1024);
        if (!chain) co_return chain.error().context("cert_chain");
        auto key = read_file(s.cert_key_file, 1024 * 1024);
        if (!key) co_return key.error().context("cert_key");
        auto checked = check_domain_certificate(s.base_domain, std::string(chain->begin(), chain->end()),
                                                std::string(key->begin(), key->end()), CertificateSource::static_file,
                                                system_now());
        if (!checked) co_return std::move(checked).take_error();
        certificates_->put(std::move(*checked));
    }
    auto stored = co_await on_store(store_->list(std::string(certificate_prefix)));
    if (!stored) co_return stored.error().context("loading certificates");
    for (const auto& entry : *stored) {
        app::StoreChange change;
        change.key = entry.key;
        change.value = entry.value;
        on_certificate_change(change);
    }
    auto ensured = co_await ensure_self_signed(executor);
    if (!ensured) co_return ensured;

    // Changes from the revision read before the lists on: those made in between arrive twice,
    // which applying them in order makes harmless.
    // A reset (the watch's revision was compacted away) is followed by every record again: start
    // from nothing so that deletions missed meanwhile are not kept.
    store_->watch(std::string(instance_prefix), revision, [this](const app::StoreChange& change) { on_instance_change(change); },
                  [this] {
                      registry_->clear();
                      wireguard_dirty_ = true;
                  });
    store_->watch(std::string(certificate_prefix), revision,
                  [this](const app::StoreChange& change) { on_certificate_change(change); }, [] {});
    store_->watch(std::string(node_prefix), revision, [this](const app::StoreChange& change) { on_node_change(change); },
                  [] {});
    co_return Result<void>();
}

NodeInfo Gateway::self() const {
    NodeInfo node;
    node.id = settings_.node_id;
    node.uuid_hex = uuid_hex_;
    node.url = settings_.node_url;
    node.wg_public_key = settings_.wg_public_key;
    node.wg_ip = settings_.wg_ip;
    node.wg_endpoint = settings_.wg_endpoint;
    node.last_seen = system_now();
    return node;
}

asio::awaitable<Result<void>> Gateway::publish_self(asio::any_io_executor) {
    NodeInfo node = self();
    {
        std::lock_guard lock(nodes_mutex_);
        if (auto it = nodes_.find(node.id); it != nodes_.end()) node.down = it->second.down;
        nodes_[node.id] = node;
    }
    auto put = co_await on_store(store_->put(fmt::format("{}{}", node_prefix, node.id), encode_node(node)));
    if (!put) co_return put.error().context("publishing this node");
    co_return Result<void>();
}

std::vector<NodeInfo> Gateway::nodes() const {
    std::lock_guard lock(nodes_mutex_);
    std::vector<NodeInfo> out;
    for (const auto& [id, node] : nodes_) out.push_back(node);
    return out;
}

asio::awaitable<Result<void>> Gateway::set_node_status(std::uint32_t id, bool down) {
    NodeInfo node;
    {
        std::lock_guard lock(nodes_mutex_);
        auto it = nodes_.find(id);
        if (it == nodes_.end()) co_return make_error("gateway node {} not found", id);
        it->second.down = down;
        node = it->second;
    }
    auto put = co_await on_store(store_->put(fmt::format("{}{}", node_prefix, id), encode_node(node)));
    if (!put) co_return put.error().context("storing the node's status");
    co_return Result<void>();
}

asio::awaitable<Result<std::size_t>> Gateway::reload_certificates() {
    auto stored = co_await on_store(store_->list(std::string(certificate_prefix)));
    if (!stored) co_return stored.error().context("reloading certificates");
    std::size_t count = 0;
    for (const auto& entry : *stored) {
        app::StoreChange change;
        change.key = entry.key;
        change.value = entry.value;
        on_certificate_change(change);
        ++count;
    }
    co_return count;
}

void Gateway::attach_proxy(std::unique_ptr<Proxy> proxy) { proxy_ = std::move(proxy); }

Result<std::string> Gateway::seal(ByteView secret) const {
    if (seal_key_.empty()) return make_error("no seal key: certificate keys are not stored");
    Bytes nonce = crypto::random_bytes(crypto::aes_gcm_nonce_size);
    DSTACK_TRY(auto sealed, crypto::aes256_gcm_encrypt(seal_key_, nonce, secret));
    nonce.insert(nonce.end(), sealed.begin(), sealed.end());
    return "aes-256-gcm:" + base64_encode(nonce);
}

Result<Bytes> Gateway::unseal(std::string_view sealed) const {
    constexpr std::string_view tag = "aes-256-gcm:";
    if (sealed.substr(0, tag.size()) != tag) return make_error("the key is not sealed (refused: keys are never stored in clear)");
    if (seal_key_.empty()) return make_error("no seal key to open it with");
    DSTACK_TRY(auto bytes, base64_decode(sealed.substr(tag.size())));
    if (bytes.size() < crypto::aes_gcm_nonce_size + crypto::aes_gcm_tag_size) return make_error("sealed key too short");
    ByteView all(bytes);
    auto opened = crypto::aes256_gcm_decrypt(seal_key_, all.subspan(0, crypto::aes_gcm_nonce_size),
                                             all.subspan(crypto::aes_gcm_nonce_size));
    if (!opened) return make_error("the sealed key does not open with this node's seal key (another gateway app's?)");
    return std::move(*opened);
}

std::string Gateway::encode_certificate(const DomainCertificate& certificate) const {
    auto sealed = seal(ByteView(reinterpret_cast<const std::uint8_t*>(certificate.pem.key_pem.data()),
                                certificate.pem.key_pem.size()));
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "domain");
    json::string(out, certificate.domain);
    json::key(out, "chain_pem");
    json::string(out, certificate.pem.chain_pem);
    json::key(out, "key_sealed");
    json::string(out, sealed ? *sealed : std::string());
    json::key(out, "not_after");
    out.Int64(certificate.not_after);
    json::key(out, "quote");
    json::string(out, certificate.quote_json);
    json::key(out, "stored_by");
    out.Uint(settings_.node_id);
    out.EndObject();
    return buffer.GetString();
}

Result<DomainCertificate> Gateway::decode_certificate(std::string_view key, std::string_view value) const {
    // cert/<domain>/<source>
    auto rest = key.substr(certificate_prefix.size());
    auto slash = rest.rfind('/');
    if (slash == std::string_view::npos) return make_error("not a certificate key");
    auto source = source_of(rest.substr(slash + 1));
    if (!source) return make_error("unknown certificate source {:?}", std::string(rest.substr(slash + 1)));
    DSTACK_TRY(auto document, json::read_json(value, {1024 * 1024, 4}));
    DSTACK_TRY(auto object, document.root().object());
    DSTACK_TRY(auto domain, object.string("domain"));
    if (domain != rest.substr(0, slash)) return make_error("domain {:?} stored under another name", domain);
    DSTACK_TRY(auto chain, object.string("chain_pem"));
    DSTACK_TRY(auto sealed, object.string("key_sealed"));
    DSTACK_TRY(auto key_bytes, unseal(sealed));
    std::string key_pem(key_bytes.begin(), key_bytes.end());
    DSTACK_TRY(auto certificate, check_domain_certificate(domain, std::move(chain), std::move(key_pem), *source, system_now()));
    if (auto quote = object.optional("quote"); quote && !quote->is_null()) {
        DSTACK_TRY(certificate.quote_json, quote->string());
    }
    return certificate;
}

void Gateway::on_certificate_change(const app::StoreChange& change) {
    auto rest = std::string_view(change.key).substr(certificate_prefix.size());
    auto slash = rest.rfind('/');
    if (slash == std::string_view::npos) return;
    auto source = source_of(rest.substr(slash + 1));
    if (!source) return;
    std::string domain(rest.substr(0, slash));
    if (!change.value) {
        // Only what the store held goes: the static file is this node's own.
        if (*source != CertificateSource::static_file) certificates_->remove(domain, *source);
        return;
    }
    auto certificate = decode_certificate(change.key, *change.value);
    if (!certificate) {
        log::warn("store: {}: {} (the certificate served before stays)", change.key, certificate.error().message);
        return;
    }
    log::info("certificate for *.{} ({}) until {}", domain, source_name(*source), format_rfc3339(certificate->not_after));
    certificates_->put(std::move(*certificate));
}

void Gateway::on_instance_change(const app::StoreChange& change) {
    std::string id = change.key.substr(instance_prefix.size());
    bool changed = false;
    if (!change.value) {
        changed = registry_->remove(id);
    } else {
        auto record = decode_instance(*change.value);
        if (!record) {
            log::warn("store: {}: {} (skipped)", change.key, record.error().message);
            return;
        }
        changed = registry_->apply(*record);
    }
    if (changed) wireguard_dirty_ = true;
}

void Gateway::on_node_change(const app::StoreChange& change) {
    std::string id_text = change.key.substr(node_prefix.size());
    std::lock_guard lock(nodes_mutex_);
    if (!change.value) {
        try {
            nodes_.erase(static_cast<std::uint32_t>(std::stoul(id_text)));
        } catch (...) {
        }
        return;
    }
    auto node = decode_node(*change.value);
    if (!node) return;
    nodes_[node->id] = *node;
}

asio::awaitable<Result<void>> Gateway::ensure_self_signed(asio::any_io_executor executor) {
    const auto& domain = settings_.base_domain;
    if (domain.empty() || !settings_.self_signed_fallback) co_return Result<void>();
    auto now = system_now();
    // Only when nothing better covers the domain (checked again every minute, so an expiring or
    // removed certificate brings it back).
    if (certificates_->layer(domain, CertificateSource::acme) || certificates_->layer(domain, CertificateSource::static_file)) {
        co_return Result<void>();
    }
    if (auto current = certificates_->layer(domain, CertificateSource::self_signed);
        current && current->not_after - now > self_signed_renew_before) {
        co_return Result<void>();
    }
    if (seal_key_.empty()) {
        auto made = make_self_signed_wildcard(domain, now);
        if (!made) co_return std::move(made).take_error();
        log::warn("serving a self-signed certificate for *.{} (this node's own: no seal key to share it)", domain);
        certificates_->put(std::move(*made));
        co_return Result<void>();
    }
    // One node makes it, every node serves it: whoever takes the lock writes it, the others
    // read it back (the watch installs it).
    std::string lock_key = "lock/self-signed/" + domain;
    std::string holder = fmt::format("node-{}-{}", settings_.node_id, uuid_hex_);
    for (int attempt = 0; attempt < 10; ++attempt) {
        auto existing = co_await on_store(store_->get(certificate_key(domain, CertificateSource::self_signed)));
        if (!existing) co_return existing.error().context("reading the self-signed certificate");
        if (*existing) {
            auto certificate = decode_certificate((*existing)->key, (*existing)->value);
            if (certificate && certificate->not_after - now > self_signed_renew_before) {
                certificates_->put(std::move(*certificate));
                co_return Result<void>();
            }
            if (!certificate) log::warn("stored self-signed certificate for {}: {} (making a new one)", domain, certificate.error().message);
        }
        auto acquired = co_await on_store(store_->try_acquire(lock_key, holder, std::chrono::seconds(60)));
        if (!acquired) co_return acquired.error().context("self-signed certificate lock");
        if (*acquired) {
            auto made = make_self_signed_wildcard(domain, now);
            if (!made) {
                co_await on_store(store_->release(lock_key, holder));
                co_return std::move(made).take_error();
            }
            auto put = co_await on_store(store_->put(certificate_key(domain, CertificateSource::self_signed), encode_certificate(*made)));
            co_await on_store(store_->release(lock_key, holder));
            if (!put) co_return put.error().context("storing the self-signed certificate");
            log::warn("no certificate covers *.{}: serving a self-signed one until a real one arrives", domain);
            certificates_->put(std::move(*made));
            co_return Result<void>();
        }
        co_await sleep_for(executor, std::chrono::milliseconds(500));
    }
    co_return make_error("self-signed certificate for {}: another node holds the lock and wrote none", domain);
}

asio::awaitable<Result<void>> Gateway::store_certificate(DomainCertificate certificate) {
    if (seal_key_.empty()) {
        certificates_->put(certificate);
        co_return make_error("no seal key: the certificate is served by this node only, not stored");
    }
    auto put = co_await on_store(store_->put(certificate_key(certificate.domain, certificate.source), encode_certificate(certificate)));
    if (!put) co_return std::move(put).take_error();
    certificates_->put(std::move(certificate));
    co_return Result<void>();
}

asio::awaitable<Result<RegisterOutcome>> Gateway::register_cvm(app::AppInfo identity, std::string public_key,
                                                               std::optional<PortPolicy> policy) {
    {
        std::lock_guard lock(nodes_mutex_);
        if (auto it = nodes_.find(settings_.node_id); it != nodes_.end() && it->second.down) {
            co_return make_error("this gateway node is marked as down and cannot accept new registrations");
        }
    }
    auto registration = registry_->register_instance(hex_encode(identity.app_id), hex_encode(identity.instance_id),
                                                     hex_encode(identity.compose_hash), std::move(public_key),
                                                     std::move(policy), system_now());
    if (!registration) co_return std::move(registration).take_error();
    if (registration->changed) {
        auto put = co_await on_store(store_->put(std::string(instance_prefix) + registration->record.instance_id,
                                        encode_instance(registration->record)));
        if (!put) co_return put.error().context("storing the instance");
        wireguard_dirty_ = true;
    }
    RegisterOutcome outcome;
    outcome.record = registration->record;
    for (auto& node : nodes()) {
        if (!node.down) outcome.nodes.push_back(std::move(node));
    }
    co_return outcome;
}

asio::awaitable<Result<InstanceRecord>> Gateway::set_admin_policy(std::string instance_id, std::optional<PortPolicy> policy) {
    auto record = registry_->set_admin_policy(instance_id, std::move(policy));
    if (!record) co_return std::move(record).take_error();
    auto put = co_await on_store(store_->put(std::string(instance_prefix) + instance_id, encode_instance(*record)));
    if (!put) co_return std::move(put).take_error();
    co_return std::move(*record);
}

asio::awaitable<Result<void>> Gateway::remove_instance(std::string instance_id) {
    if (!registry_->remove(instance_id)) co_return make_error("instance {} not found", instance_id);
    wireguard_dirty_ = true;
    co_return co_await on_store(store_->remove(std::string(instance_prefix) + instance_id));
}

asio::awaitable<void> Gateway::sync_wireguard(asio::any_io_executor executor) {
    if (!wireguard_) co_return;
    if (!wireguard_ok_) {
        auto set = co_await wireguard_->set_interface(executor, settings_.wg_private_key, settings_.wg_listen_port);
        if (!set) {
            log::warn("WireGuard {}: {} (registrations are kept; traffic reaches CVMs once the device is up)",
                      settings_.wg_interface, set.error().message);
            co_return;
        }
        wireguard_ok_ = true;
        log::info("WireGuard {}: configured (port {})", settings_.wg_interface, settings_.wg_listen_port);
    }
    std::vector<app::WgPeer> peers;
    for (const auto& record : registry_->all()) {
        app::WgPeer peer;
        peer.public_key = record.public_key;
        peer.allowed_ip = record.ip;
        peers.push_back(std::move(peer));
    }
    wireguard_dirty_ = false;
    auto synced = co_await wireguard_->sync_peers(executor, std::move(peers), 25);
    if (!synced) {
        wireguard_dirty_ = true;
        wireguard_ok_ = false;
        log::warn("WireGuard {}: {}", settings_.wg_interface, synced.error().message);
    }
}

asio::awaitable<void> Gateway::refresh_handshakes(asio::any_io_executor executor) {
    if (!wireguard_ || !wireguard_ok_) {
        registry_->set_handshakes({}, false);
        co_return;
    }
    auto status = co_await wireguard_->status(executor);
    if (!status) {
        wireguard_ok_ = false;
        registry_->set_handshakes({}, false);
        co_return;
    }
    std::map<std::string, UnixSeconds> handshakes;
    for (const auto& peer : status->peers) handshakes[peer.public_key] = peer.last_handshake_sec;
    registry_->set_handshakes(std::move(handshakes), true);
}

void Gateway::start_background(asio::any_io_executor executor) {
    auto loop = [](Gateway* self, asio::any_io_executor executor) -> asio::awaitable<void> {
        int tick = 0;
        auto last_recycle = std::chrono::steady_clock::now();
        while (!self->stopped_) {
            if (self->wireguard_dirty_ || !self->wireguard_ok_) co_await self->sync_wireguard(executor);
            if (tick % 5 == 0) co_await self->refresh_handshakes(executor);
            if (tick % 30 == 0) {
                auto published = co_await self->publish_self(executor);
                if (!published) log::warn("{}", published.error().message);
                auto ensured = co_await self->ensure_self_signed(executor);
                if (!ensured) log::warn("{}", ensured.error().message);
            }
            auto now = std::chrono::steady_clock::now();
            if (self->settings_.recycle_enabled && now - last_recycle >= self->settings_.recycle_interval) {
                last_recycle = now;
                auto cutoff = system_now() - self->settings_.recycle_timeout.count() / 1000;
                for (const auto& id : self->registry_->expired(cutoff)) {
                    log::info("instance {}: no handshake for {} s: removed", id, self->settings_.recycle_timeout.count() / 1000);
                    co_await self->remove_instance(id);
                }
            }
            ++tick;
            co_await sleep_for(executor, std::chrono::seconds(2));
        }
    };
    asio::co_spawn(executor, loop(this, executor), asio::detached);
    if (!settings_.acme_url.empty()) asio::co_spawn(executor, acme_loop(this, executor), asio::detached);
}

void Gateway::stop() {
    if (stopped_.exchange(true)) return;
    if (store_) store_->stop();
    if (proxy_) proxy_->stop();
}

}  // namespace dstack::applets::gateway
