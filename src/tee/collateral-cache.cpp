// The on-disk collateral cache: one JSON file (dcap-qvl's collateral format) per PCCS, platform
// and PCK chain, used only while every dated document in it is current. Entries are never
// trusted: they feed the same verification as fresh collateral, so a damaged or planted file can
// at worst fail verification, and a stale one is fetched again. The directory is bounded in
// entries and bytes; the oldest entries make room.
#include <algorithm>
#include <cstdlib>
#include <system_error>
#include <vector>

#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/pki.hpp"
#include "dstack/tee/tcb-info.hpp"

namespace dstack::tee {
namespace {

constexpr std::string_view cache_key_domain = "dstack collateral cache v1";
// Hex doubles the CRLs: a file built from responses within max_pccs_response_size stays far below.
constexpr std::size_t max_cache_file_size = 8 * 1024 * 1024;

void hash_part(crypto::Hasher& hasher, std::string_view part) {
    std::uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = std::uint8_t(std::uint64_t(part.size()) >> (56 - 8 * i));
    hasher.update(ByteView(length, sizeof length));
    hasher.update(as_bytes(part));
}

Result<void> check_window(std::string_view what, UnixSeconds from, UnixSeconds until, UnixSeconds now) {
    if (now < from) return make_error("{} is not valid yet at {} (from {})", what, format_rfc3339(now), format_rfc3339(from));
    if (now > until) return make_error("{} expired at {} (now {})", what, format_rfc3339(until), format_rfc3339(now));
    return {};
}

std::filesystem::path cache_file(const std::filesystem::path& dir, std::string_view key) {
    return dir / (std::string(key) + ".json");
}

bool is_cache_key(std::string_view key) {
    return key.size() == 64 && key.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// <key>.json: the key when `name` is an entry's file name.
std::optional<std::string_view> entry_key(std::string_view name) {
    constexpr std::string_view suffix = ".json";
    if (!name.ends_with(suffix)) return std::nullopt;
    auto key = name.substr(0, name.size() - suffix.size());
    if (!is_cache_key(key)) return std::nullopt;
    return key;
}

// What write_file_atomic leaves behind when its process dies: .<key>.json.tmp-XXXXXXXX.
bool is_leftover_temp(std::string_view name) {
    if (!name.starts_with('.')) return false;
    auto marker = name.find(".json.tmp-");
    return marker != std::string_view::npos && entry_key(name.substr(1, marker + 5 - 1)).has_value();
}

// A writer that crashed an hour ago is not coming back for its temporary file.
constexpr auto leftover_temp_age = std::chrono::hours(1);

struct CacheEntry {
    std::filesystem::path path;
    std::string key;
    std::filesystem::file_time_type written;
    std::uintmax_t size = 0;
};

}  // namespace

std::optional<std::filesystem::path> default_collateral_cache_dir() {
    auto absolute_env = [](const char* name) -> std::optional<std::filesystem::path> {
        const char* value = std::getenv(name);
        if (value == nullptr || *value != '/') return std::nullopt;  // XDG: relative paths are invalid
        return std::filesystem::path(value);
    };
    if (auto xdg = absolute_env("XDG_CACHE_HOME")) return *xdg / "dstack" / "collateral";
    if (auto home = absolute_env("HOME")) return *home / ".cache" / "dstack" / "collateral";
    return std::nullopt;
}

std::string collateral_cache_key(std::string_view normalized_base, std::string_view tee, std::string_view fmspc_hex,
                                 std::string_view ca_kind, std::string_view pck_chain) {
    crypto::Hasher hasher(crypto::HashAlgorithm::sha256);
    for (std::string_view part : {cache_key_domain, normalized_base, tee, fmspc_hex, ca_kind, pck_chain})
        hash_part(hasher, part);
    return hex_encode(hasher.finish());
}

Result<void> check_collateral_current(const Collateral& collateral, UnixSeconds now) {
    DSTACK_TRY(auto tcb_info, parse_tcb_info(collateral.tcb_info));
    DSTACK_CHECK(check_window("TCB info", tcb_info.issue_date, tcb_info.next_update, now));
    DSTACK_TRY(auto qe_identity, parse_qe_identity(collateral.qe_identity));
    DSTACK_CHECK(check_window("QE identity", qe_identity.issue_date, qe_identity.next_update, now));
    DSTACK_TRY(auto pck_crl, Crl::from_der(collateral.pck_crl));
    DSTACK_CHECK(check_window("PCK CRL", pck_crl.this_update(), pck_crl.next_update(), now));
    DSTACK_TRY(auto root_ca_crl, Crl::from_der(collateral.root_ca_crl));
    DSTACK_CHECK(check_window("root CA CRL", root_ca_crl.this_update(), root_ca_crl.next_update(), now));
    return {};
}

std::optional<Collateral> load_cached_collateral(const std::filesystem::path& dir, std::string_view key,
                                                 std::string_view pck_chain, UnixSeconds now) {
    if (!is_cache_key(key)) return std::nullopt;
    auto path = cache_file(dir, key);
    std::error_code error;
    if (!std::filesystem::exists(path, error)) return std::nullopt;
    auto text = read_text_file(path, max_cache_file_size);
    if (!text) {
        log::warn("collateral cache: ignoring {}: {}", path.string(), text.error().message);
        return std::nullopt;
    }
    auto collateral = parse_collateral_json(*text);
    if (!collateral) {
        log::warn("collateral cache: ignoring {}: {}", path.string(), collateral.error().message);
        return std::nullopt;
    }
    if (collateral->pck_certificate_chain != pck_chain) {
        log::warn("collateral cache: ignoring {}: it belongs to another PCK chain", path.string());
        return std::nullopt;
    }
    if (auto current = check_collateral_current(*collateral, now); !current) {
        log::debug("collateral cache: not using {}: {}", path.string(), current.error().message);
        return std::nullopt;
    }
    return std::move(collateral).value();
}

Result<void> store_cached_collateral(const std::filesystem::path& dir, std::string_view key, const Collateral& collateral,
                                     const CollateralCacheLimits& limits) {
    if (!is_cache_key(key)) return make_error("collateral cache: invalid key {}", key);
    std::string json = collateral_to_json(collateral);
    if (json.size() > limits.max_bytes || limits.max_entries == 0)
        return make_error("collateral cache: an entry of {} bytes does not fit the cache's limits ({} entries, {} bytes)",
                          json.size(), limits.max_entries, limits.max_bytes);
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return make_error("collateral cache: cannot create {}: {}", dir.string(), error.message());
    auto path = cache_file(dir, key);
    auto written = write_file_atomic(path, as_bytes(json), 0644);
    if (!written) return std::move(written).take_error().context(fmt::format("collateral cache: writing {}", path.string()));
    enforce_collateral_cache_limits(dir, limits, key);
    return {};
}

void enforce_collateral_cache_limits(const std::filesystem::path& dir, const CollateralCacheLimits& limits,
                                     std::string_view keep) {
    std::vector<CacheEntry> entries;
    std::error_code error;
    const auto now = std::filesystem::file_time_type::clock::now();
    // Several processes may share the directory: a file gone meanwhile is simply skipped.
    for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        std::error_code entry_error;
        if (!it->is_regular_file(entry_error)) continue;
        std::string name = it->path().filename().string();
        auto written = it->last_write_time(entry_error);
        if (entry_error) continue;
        if (is_leftover_temp(name)) {
            if (now - written > leftover_temp_age) std::filesystem::remove(it->path(), entry_error);
            continue;
        }
        auto key = entry_key(name);
        if (!key) continue;
        auto size = it->file_size(entry_error);
        if (entry_error) continue;
        entries.push_back({it->path(), std::string(*key), written, size});
    }
    if (error) {
        log::warn("collateral cache: cannot list {}: {}", dir.string(), error.message());
        return;
    }
    std::uintmax_t total = 0;
    for (const auto& entry : entries) total += entry.size;
    // Oldest first; the name breaks ties so that every process evicts in the same order.
    std::sort(entries.begin(), entries.end(), [](const CacheEntry& a, const CacheEntry& b) {
        return a.written != b.written ? a.written < b.written : a.key < b.key;
    });
    std::size_t count = entries.size();
    for (const auto& entry : entries) {
        if (count <= limits.max_entries && total <= limits.max_bytes) break;
        if (entry.key == keep) continue;
        std::error_code remove_error;
        std::filesystem::remove(entry.path, remove_error);
        if (remove_error) {
            log::warn("collateral cache: cannot remove {}: {}", entry.path.string(), remove_error.message());
            continue;
        }
        log::debug("collateral cache: removed {} to stay within {} entries and {} bytes", entry.path.string(),
                   limits.max_entries, limits.max_bytes);
        --count;
        total -= entry.size;
    }
}

}  // namespace dstack::tee
