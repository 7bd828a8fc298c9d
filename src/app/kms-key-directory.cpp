#include "dstack/app/kms-key-directory.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "dstack/base/file-lock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::app {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_key_file = 64 * 1024;
const char* const key_set_files[] = {"root-ca.key", "root-ca.crt", "root-k256.key", "tmp-ca.key",
                                     "tmp-ca.crt",  "rpc.key",     "rpc.crt"};

fs::path epoch_dir(const fs::path& dir, std::uint32_t epoch) {
    return epoch == 0 ? dir : dir / "epochs" / std::to_string(epoch);
}

Result<void> check_private(const fs::path& file) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) return make_error("{}: cannot stat", file.string());
    if (st.st_mode & 077) {
        return make_error("{}: mode {:o} lets other users read a secret key; chmod 600 it", file.string(), st.st_mode & 0777);
    }
    return {};
}

Result<crypto::P256PrivateKey> load_p256(const fs::path& file) {
    DSTACK_CHECK(check_private(file));
    DSTACK_TRY(auto text, read_text_file(file, max_key_file));
    auto key = crypto::P256PrivateKey::from_pem(text);
    if (!key) return std::move(key).take_error().context(file.string());
    return key;
}

Result<crypto::Certificate> load_certificate(const fs::path& file, const crypto::P256PrivateKey& key) {
    DSTACK_TRY(auto text, read_text_file(file, max_key_file));
    auto certificate = crypto::Certificate::from_pem(text);
    if (!certificate) return std::move(certificate).take_error().context(file.string());
    if (certificate->spki_der() != key.spki_der())
        return make_error("{}: the certificate is not for the key next to it (the directory is inconsistent)", file.string());
    return certificate;
}

Result<crypto::Secp256k1PrivateKey> load_k256(const fs::path& file) {
    DSTACK_CHECK(check_private(file));
    DSTACK_TRY(auto bytes, read_file(file, 64));
    if (bytes.size() != 32) return make_error("{}: {} bytes, expected a 32-byte secp256k1 scalar", file.string(), bytes.size());
    auto key = crypto::Secp256k1PrivateKey::from_scalar(bytes);
    wipe(bytes);
    if (!key) return std::move(key).take_error().context(file.string());
    return key;
}

Result<KmsRootKeys> load_root(const fs::path& dir, std::uint32_t epoch) {
    auto base = epoch_dir(dir, epoch);
    for (auto name : {"root-ca.key", "root-ca.crt", "root-k256.key"}) {
        if (!fs::exists(base / name))
            return make_error("{}: missing: root-key epoch {} is incomplete (an interrupted rotation?)", (base / name).string(), epoch);
    }
    DSTACK_TRY(auto ca_key, load_p256(base / "root-ca.key"));
    DSTACK_TRY(auto ca_cert, load_certificate(base / "root-ca.crt", ca_key));
    DSTACK_TRY(auto k256, load_k256(base / "root-k256.key"));
    return KmsRootKeys{epoch, std::move(ca_key), std::move(ca_cert), std::move(k256)};
}

Result<void> write_text(const fs::path& file, std::string_view text, unsigned mode) {
    return write_file_atomic(file, as_bytes(text), mode);
}

Result<void> store_root_keys(const fs::path& dir, const KmsRootKeys& root) {
    auto base = epoch_dir(dir, root.epoch);
    std::error_code ec;
    fs::create_directories(base, ec);
    if (ec) return make_error("{}: {}", base.string(), ec.message());
    DSTACK_CHECK(write_text(base / "root-ca.key", root.ca_key.pkcs8_pem(), 0600));
    Bytes scalar = root.k256_key.scalar();
    auto written = write_file_atomic(base / "root-k256.key", scalar, 0600);
    wipe(scalar);
    DSTACK_CHECK(written);
    return write_text(base / "root-ca.crt", root.ca_cert.pem(), 0644);
}

Result<BootstrapInfo> parse_bootstrap_info(std::string_view text) {
    DSTACK_TRY(auto document, json::read_json(text, {1024 * 1024, 4}));
    DSTACK_TRY(auto object, document.root().object());
    BootstrapInfo info;
    DSTACK_TRY(info.ca_pubkey, object.hex("ca_pubkey"));
    DSTACK_TRY(info.k256_pubkey, object.hex("k256_pubkey"));
    DSTACK_TRY(info.attestation, object.hex("attestation"));
    return info;
}

Result<KmsRootKeys> fresh_root(std::uint32_t epoch, UnixSeconds now) {
    DSTACK_TRY(auto ca_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto ca_cert, issue_kms_root_ca_certificate(ca_key, now));
    DSTACK_TRY(auto k256, crypto::Secp256k1PrivateKey::generate());
    return KmsRootKeys{epoch, std::move(ca_key), std::move(ca_cert), std::move(k256)};
}

}  // namespace

std::string bootstrap_info_json(const BootstrapInfo& info) {
    return fmt::format(R"({{"ca_pubkey":"{}","k256_pubkey":"{}","attestation":"{}"}})", hex_encode(info.ca_pubkey),
                       hex_encode(info.k256_pubkey), hex_encode(info.attestation));
}

const KmsRootKeys* KmsKeys::epoch(std::uint64_t number) const {
    for (const auto& root : epochs)
        if (root.epoch == number) return &root;
    return nullptr;
}

Result<KmsKeys> generate_kms_keys(std::string domain, UnixSeconds now) {
    DSTACK_CHECK(validate_kms_domain(domain));
    DSTACK_TRY(auto root, fresh_root(0, now));
    DSTACK_TRY(auto tmp_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto tmp_cert, issue_kms_temp_ca_certificate(tmp_key, now));
    DSTACK_TRY(auto rpc_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto rpc_cert, issue_kms_rpc_certificate(rpc_key, domain, root, std::nullopt, now));
    std::vector<KmsRootKeys> epochs;
    epochs.push_back(std::move(root));
    return KmsKeys{std::move(epochs), std::move(tmp_key), std::move(tmp_cert), std::move(rpc_key), std::move(rpc_cert),
                   std::move(domain), std::nullopt};
}

Result<void> renew_kms_certificates(KmsKeys& keys, const std::optional<Bytes>& rpc_attestation, UnixSeconds now) {
    for (auto& root : keys.epochs) {
        if (kms_certificate_needs_renewal(root.ca_cert, now)) {
            DSTACK_TRY(root.ca_cert, issue_kms_root_ca_certificate(root.ca_key, now));
        }
    }
    if (kms_certificate_needs_renewal(keys.tmp_ca_cert, now)) {
        DSTACK_TRY(keys.tmp_ca_cert, issue_kms_temp_ca_certificate(keys.tmp_ca_key, now));
    }
    DSTACK_TRY(keys.rpc_cert_pem, issue_kms_rpc_certificate(keys.rpc_key, keys.domain, keys.epochs.front(), rpc_attestation, now));
    return {};
}

Result<std::optional<KmsKeys>> load_kms_keys(const fs::path& dir) {
    std::vector<std::string> present, missing;
    for (auto name : key_set_files) (fs::exists(dir / name) ? present : missing).push_back(name);
    if (present.empty()) return std::optional<KmsKeys>();
    if (!missing.empty()) {
        return make_error("{}: {} missing while {} exist: the key directory is incomplete (an interrupted bootstrap or "
                          "onboarding?); restore it from a backup, or empty it to start over",
                          (dir / missing.front()).string(), missing.front(), present.front());
    }
    std::vector<KmsRootKeys> epochs;
    DSTACK_TRY(auto root, load_root(dir, 0));
    epochs.push_back(std::move(root));
    std::error_code ec;
    if (fs::is_directory(dir / "epochs", ec)) {
        std::vector<std::uint32_t> numbers;
        for (const auto& entry : fs::directory_iterator(dir / "epochs", ec)) {
            auto name = entry.path().filename().string();
            if (name.empty() || name.size() > 6 || !std::all_of(name.begin(), name.end(), ::isdigit) || name == "0" ||
                name.front() == '0')
                return make_error("{}: not a root-key epoch (epochs/1, epochs/2, ...)", entry.path().string());
            numbers.push_back(static_cast<std::uint32_t>(std::stoul(name)));
        }
        std::sort(numbers.begin(), numbers.end());
        for (std::size_t i = 0; i < numbers.size(); ++i) {
            if (numbers[i] != i + 1)
                return make_error("{}: root-key epoch {} is missing (epochs must follow one another)", (dir / "epochs").string(), i + 1);
            DSTACK_TRY(auto next, load_root(dir, numbers[i]));
            epochs.push_back(std::move(next));
        }
    }
    DSTACK_TRY(auto tmp_key, load_p256(dir / "tmp-ca.key"));
    DSTACK_TRY(auto tmp_cert, load_certificate(dir / "tmp-ca.crt", tmp_key));
    DSTACK_TRY(auto rpc_key, load_p256(dir / "rpc.key"));
    DSTACK_TRY(auto rpc_text, read_text_file(dir / "rpc.crt", max_key_file));
    DSTACK_TRY(auto rpc_cert, crypto::Certificate::from_pem(rpc_text));
    if (rpc_cert.spki_der() != rpc_key.spki_der())
        return make_error("{}: the certificate is not for rpc.key (the directory is inconsistent)", (dir / "rpc.crt").string());
    std::string domain;
    if (fs::exists(dir / "rpc-domain")) {
        DSTACK_TRY(domain, read_text_file(dir / "rpc-domain", 1024));
        while (!domain.empty() && (domain.back() == '\n' || domain.back() == ' ' || domain.back() == '\r')) domain.pop_back();
    } else {
        domain = rpc_cert.common_name().value_or("");
    }
    if (auto valid = validate_kms_domain(domain); !valid)
        return std::move(valid).take_error().context((dir / "rpc-domain").string());
    std::optional<BootstrapInfo> bootstrap;
    if (fs::exists(dir / "bootstrap-info.json")) {
        DSTACK_TRY(auto text, read_text_file(dir / "bootstrap-info.json", 1024 * 1024));
        auto info = parse_bootstrap_info(text);
        if (!info) return std::move(info).take_error().context((dir / "bootstrap-info.json").string());
        bootstrap = std::move(*info);
    }
    return std::optional<KmsKeys>(KmsKeys{std::move(epochs), std::move(tmp_key), std::move(tmp_cert), std::move(rpc_key),
                                          std::move(rpc_text), std::move(domain), std::move(bootstrap)});
}

Result<void> store_kms_keys(const fs::path& dir, const KmsKeys& keys) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return make_error("{}: {}", dir.string(), ec.message());
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (keys.bootstrap_info)
        DSTACK_CHECK(write_text(dir / "bootstrap-info.json", bootstrap_info_json(*keys.bootstrap_info), 0644));
    // Later epochs first, epoch 0 last of the root keys: a crash leaves epoch 0 absent (refused) rather than a
    // directory that loads without them.
    for (auto it = keys.epochs.rbegin(); it != keys.epochs.rend(); ++it) DSTACK_CHECK(store_root_keys(dir, *it));
    DSTACK_CHECK(write_text(dir / "tmp-ca.key", keys.tmp_ca_key.pkcs8_pem(), 0600));
    DSTACK_CHECK(write_text(dir / "rpc.key", keys.rpc_key.pkcs8_pem(), 0600));
    DSTACK_CHECK(write_text(dir / "rpc-domain", keys.domain, 0644));
    DSTACK_CHECK(write_text(dir / "tmp-ca.crt", keys.tmp_ca_cert.pem(), 0644));
    return write_text(dir / "rpc.crt", keys.rpc_cert_pem, 0644);
}

Result<void> store_kms_certificates(const fs::path& dir, const KmsKeys& keys) {
    for (const auto& root : keys.epochs) DSTACK_CHECK(write_text(epoch_dir(dir, root.epoch) / "root-ca.crt", root.ca_cert.pem(), 0644));
    DSTACK_CHECK(write_text(dir / "tmp-ca.crt", keys.tmp_ca_cert.pem(), 0644));
    return write_text(dir / "rpc.crt", keys.rpc_cert_pem, 0644);
}

Result<std::uint32_t> add_key_epoch(const fs::path& dir) {
    DSTACK_TRY(auto loaded, load_kms_keys(dir));
    if (!loaded) return make_error("{}: no keys to rotate: bootstrap or onboard first", dir.string());
    DSTACK_TRY(auto lock, FileLock::acquire(dir / "epochs.lock"));
    auto next = static_cast<std::uint32_t>(loaded->epochs.back().epoch + 1);
    DSTACK_TRY(auto root, fresh_root(next, system_now()));
    // Written in a temporary directory, then renamed into place: an epoch appears whole or not at all.
    auto staging = dir / fmt::format(".epoch-{}.new", next);
    std::error_code ec;
    fs::remove_all(staging, ec);
    fs::create_directories(staging, ec);
    if (ec) return make_error("{}: {}", staging.string(), ec.message());
    KmsRootKeys staged = root;
    staged.epoch = 0;  // epoch_dir(staging, 0) is staging itself
    DSTACK_CHECK(store_root_keys(staging, staged));
    fs::create_directories(dir / "epochs", ec);
    fs::rename(staging, epoch_dir(dir, next), ec);
    if (ec) return make_error("{}: {}", epoch_dir(dir, next).string(), ec.message());
    return next;
}

Result<HandedOverKeys> parse_kms_key_response(const json::Value& response) {
    DSTACK_TRY(auto object, response.object());
    DSTACK_TRY(auto temp_pem, object.string("temp_ca_key"));
    auto temp_key = crypto::P256PrivateKey::from_pem(temp_pem);
    if (!temp_key) return std::move(temp_key).take_error().context("$.temp_ca_key");
    HandedOverKeys out{std::move(*temp_key), {}};
    DSTACK_TRY(auto sets, object.array("keys", 1024));
    if (sets.size() == 0) return make_error("$.keys: no key set");
    for (std::size_t i = 0; i < sets.size(); ++i) {
        DSTACK_TRY(auto set, sets[i].object());
        DSTACK_TRY(auto ca_pem, set.string("ca_key"));
        auto ca_key = crypto::P256PrivateKey::from_pem(ca_pem);
        if (!ca_key) return std::move(ca_key).take_error().context(set.member_path("ca_key"));
        DSTACK_TRY(auto k256_bytes, set.hex("k256_key", 32));
        auto k256 = crypto::Secp256k1PrivateKey::from_scalar(k256_bytes);
        wipe(k256_bytes);
        if (!k256) return std::move(k256).take_error().context(set.member_path("k256_key"));
        std::uint32_t epoch = static_cast<std::uint32_t>(i);
        if (auto number = set.optional("epoch")) {
            DSTACK_TRY(epoch, number->uint_as<std::uint32_t>());
        }
        if (epoch != i) return make_error("{}: epoch {} out of order", set.path(), epoch);
        out.sets.push_back({epoch, {std::move(*ca_key), std::move(*k256)}});
    }
    return out;
}

Result<KmsKeys> assemble_onboarded_keys(HandedOverKeys handed, std::string domain, UnixSeconds now) {
    DSTACK_CHECK(validate_kms_domain(domain));
    std::vector<KmsRootKeys> epochs;
    for (auto& [epoch, pair] : handed.sets) {
        DSTACK_TRY(auto cert, issue_kms_root_ca_certificate(pair.first, now));
        epochs.push_back(KmsRootKeys{epoch, pair.first, std::move(cert), pair.second});
    }
    DSTACK_TRY(auto tmp_cert, issue_kms_temp_ca_certificate(handed.temp_ca_key, now));
    DSTACK_TRY(auto rpc_key, crypto::P256PrivateKey::generate());
    DSTACK_TRY(auto rpc_cert, issue_kms_rpc_certificate(rpc_key, domain, epochs.front(), std::nullopt, now));
    return KmsKeys{std::move(epochs), handed.temp_ca_key, std::move(tmp_cert), std::move(rpc_key), std::move(rpc_cert),
                   std::move(domain), std::nullopt};
}

Result<std::shared_ptr<AppEpochRegistry>> AppEpochRegistry::open(const fs::path& dir) {
    return std::shared_ptr<AppEpochRegistry>(new AppEpochRegistry(dir / "app-epochs.json"));
}

namespace {

constexpr std::size_t max_registry_bytes = 16 * 1024 * 1024;

Result<std::map<std::string, std::uint32_t>> read_registry(const fs::path& path) {
    std::map<std::string, std::uint32_t> out;
    if (!fs::exists(path)) return out;
    DSTACK_TRY(auto text, read_text_file(path, max_registry_bytes));
    auto document = json::read_json(text, {max_registry_bytes, 2});
    if (!document) return document.error().context(path.string());
    const auto& dom = document->dom();
    if (!dom.IsObject()) return make_error("{}: not a JSON object", path.string());
    for (auto it = dom.MemberBegin(); it != dom.MemberEnd(); ++it) {
        if (!it->value.IsUint()) return make_error("{}: {}: not an epoch number", path.string(), it->name.GetString());
        out[it->name.GetString()] = it->value.GetUint();
    }
    return out;
}

}  // namespace

Result<std::optional<std::uint32_t>> AppEpochRegistry::recorded(const std::string& app_id_hex) {
    DSTACK_TRY(auto entries, read_registry(path_));
    auto it = entries.find(app_id_hex);
    if (it == entries.end()) return std::optional<std::uint32_t>();
    return std::optional<std::uint32_t>(it->second);
}

Result<std::uint32_t> AppEpochRegistry::epoch_for_app(ByteView app_id, std::optional<std::uint64_t> policy_epoch,
                                                      const KmsKeys& keys) {
    if (policy_epoch) {
        if (!keys.epoch(*policy_epoch))
            return make_error("the policy names key epoch {}, which this KMS does not have (it has 0 to {})", *policy_epoch,
                              keys.epochs.back().epoch);
        return static_cast<std::uint32_t>(*policy_epoch);
    }
    std::string id = hex_encode(app_id);
    std::lock_guard guard(mutex_);
    // Without rotation every app is epoch 0: nothing to read or record on this hot path.
    if (keys.epochs.size() == 1) return 0u;
    DSTACK_TRY(auto lock, FileLock::acquire(path_.string() + ".lock"));
    DSTACK_TRY(auto entries, read_registry(path_));
    if (auto it = entries.find(id); it != entries.end()) return it->second;
    std::uint32_t newest = keys.epochs.back().epoch;
    entries[id] = newest;
    std::string text = "{";
    for (const auto& [key, value] : entries) text += fmt::format("{}\"{}\":{}", text.size() > 1 ? "," : "", key, value);
    text += "}\n";
    DSTACK_CHECK(write_file_atomic(path_, as_bytes(text), 0600));
    return newest;
}

std::uint32_t AppEpochRegistry::peek_epoch_for_app(ByteView app_id, const KmsKeys& keys) {
    if (keys.epochs.size() == 1) return 0u;
    std::lock_guard guard(mutex_);
    auto known = recorded(hex_encode(app_id));
    if (known && *known) return **known;
    return keys.epochs.back().epoch;
}

}  // namespace dstack::app
