// The embedded single-node store: the whole state in memory, written to one file after every
// change (the gateway keeps few, small records, so rewriting the file is cheaper to reason about
// than a log). Watches are in-process: changes are posted to the executor in revision order.
#include <map>

#include <asio/post.hpp>
#include <rapidjson/stringbuffer.h>

#include "cluster-store-codec.hpp"
#include "dstack/app/cluster-store.hpp"
#include "dstack/base/file-lock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-writer.hpp"

namespace dstack::app {

namespace {

using namespace store_detail;

constexpr std::string_view file_format = "dstack-cluster-store";
constexpr std::size_t max_file_entries = 1'000'000;

struct LocalValue {
    std::string value;
    std::int64_t revision = 0;
    bool lock = false;  // held by try_acquire: kept in memory only
};

using Entries = std::map<std::string, LocalValue>;

struct Watcher {
    std::string prefix;
    std::int64_t after = 0;  // changes at or below it were already delivered (or predate the watch)
    std::function<void(const StoreChange&)> on_change;
    std::function<void()> on_reset;
};

// What posted deliveries need; outlives the store while deliveries are queued.
struct Watchers {
    bool stopped = false;
    std::vector<Watcher> list;

    void deliver(const StoreChange& change) {
        for (std::size_t i = 0; i < list.size() && !stopped; ++i) {
            auto& watcher = list[i];
            if (change.revision <= watcher.after || change.key.compare(0, watcher.prefix.size(), watcher.prefix) != 0) {
                continue;
            }
            watcher.after = change.revision;
            auto on_change = watcher.on_change;  // the callback may add watchers (reallocating list)
            on_change(change);
        }
    }
};

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

std::string serialize(std::int64_t revision, const Entries& entries) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "format");
    json::string(out, file_format);
    json::key(out, "version");
    out.Uint(1);
    json::key(out, "revision");
    json::string(out, std::to_string(revision));
    json::key(out, "entries");
    out.StartArray();
    for (const auto& [key, entry] : entries) {
        if (entry.lock) continue;
        out.StartObject();
        json::key(out, "key");
        json::string(out, to_base64(key));
        json::key(out, "value");
        json::string(out, to_base64(entry.value));
        json::key(out, "revision");
        json::string(out, std::to_string(entry.revision));
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

Result<void> parse(std::string_view text, std::int64_t& revision, Entries& entries) {
    DSTACK_TRY(auto document, json::read_json(text, {store_max_file_bytes, 4}));
    DSTACK_TRY(auto root, document.root().object());
    DSTACK_TRY(auto format, root.string("format"));
    if (format != file_format) return make_error("$.format: expected \"{}\", got \"{}\"", file_format, format);
    DSTACK_TRY(auto version, root.uint_as<unsigned>("version"));
    if (version != 1) return make_error("$.version: unsupported version {}", version);
    DSTACK_TRY(revision, int64_field(root, "revision"));
    DSTACK_TRY(auto list, root.array("entries", max_file_entries));
    for (std::size_t i = 0; i < list.size(); ++i) {
        DSTACK_TRY(auto item, list[i].object());
        DSTACK_TRY(auto key, base64_field(item, "key", store_max_key_bytes));
        LocalValue value;
        DSTACK_TRY(value.value, base64_field(item, "value", store_max_value_bytes));
        DSTACK_TRY(value.revision, int64_field(item, "revision"));
        if (value.revision <= 0 || value.revision > revision) {
            return make_error("{}.revision: {} is outside 1..{} (the file's revision)", item.path(), value.revision,
                              revision);
        }
        if (!entries.emplace(std::move(key), std::move(value)).second) {
            return make_error("{}.key: the key appears twice", item.path());
        }
    }
    return {};
}

class LocalStore final : public ClusterStore {
public:
    LocalStore(asio::any_io_executor ex, std::filesystem::path file, FileLock lock, std::int64_t revision, Entries entries)
        : ex_(std::move(ex)), file_(std::move(file)), lock_(std::move(lock)), revision_(revision),
          entries_(std::move(entries)), watchers_(std::make_shared<Watchers>()) {}
    ~LocalStore() override { stop(); }

    asio::awaitable<Result<void>> put(std::string key, std::string value) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        if (auto checked = check_value(value); !checked) co_return std::move(checked).take_error();
        LocalValue entry;
        entry.value = std::move(value);
        co_return change(std::move(key), std::move(entry));
    }

    asio::awaitable<Result<std::optional<StoreEntry>>> get(std::string key) override {
        auto found = entries_.find(key);
        if (found == entries_.end()) co_return std::optional<StoreEntry>();
        co_return std::optional<StoreEntry>(to_entry(*found));
    }

    asio::awaitable<Result<std::vector<StoreEntry>>> list(std::string prefix) override {
        std::vector<StoreEntry> out;
        for (auto it = entries_.lower_bound(prefix); it != entries_.end() && starts_with(it->first, prefix); ++it) {
            out.push_back(to_entry(*it));
        }
        co_return out;
    }

    asio::awaitable<Result<void>> remove(std::string key) override {
        if (!entries_.count(key)) co_return Result<void>();
        co_return change(std::move(key), std::nullopt);
    }

    asio::awaitable<Result<std::int64_t>> revision() override { co_return revision_; }

    asio::awaitable<Result<bool>> try_acquire(std::string key, std::string holder, std::chrono::seconds) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        if (auto checked = check_value(holder); !checked) co_return std::move(checked).take_error();
        auto found = entries_.find(key);
        if (found != entries_.end()) co_return found->second.lock && found->second.value == holder;
        LocalValue entry;
        entry.value = std::move(holder);
        entry.lock = true;
        auto changed = change(std::move(key), std::move(entry));
        if (!changed) co_return std::move(changed).take_error();
        co_return true;
    }

    asio::awaitable<Result<void>> release(std::string key, std::string holder) override {
        auto found = entries_.find(key);
        if (found == entries_.end() || found->second.value != holder) co_return Result<void>();
        co_return change(std::move(key), std::nullopt);
    }

    void watch(std::string prefix, std::int64_t after_revision, std::function<void(const StoreChange&)> on_change,
               std::function<void()> on_reset) override {
        if (watchers_->stopped) return;
        Watcher watcher;
        watcher.prefix = prefix;
        watcher.after = revision_;
        watcher.on_change = on_change;
        watcher.on_reset = on_reset;
        watchers_->list.push_back(std::move(watcher));
        // No history is kept: a watch from the past starts over from the current contents.
        if (after_revision != 0 && after_revision < revision_) {
            std::vector<StoreChange> snapshot;
            for (auto it = entries_.lower_bound(prefix); it != entries_.end() && starts_with(it->first, prefix); ++it) {
                snapshot.push_back(StoreChange{it->first, it->second.value, it->second.revision});
            }
            asio::post(ex_, [watchers = watchers_, snapshot = std::move(snapshot), on_change, on_reset] {
                if (watchers->stopped) return;
                if (on_reset) on_reset();
                for (const auto& change : snapshot) {
                    if (watchers->stopped) return;
                    on_change(change);
                }
            });
        }
    }

    void stop() override {
        watchers_->stopped = true;
        watchers_->list.clear();
    }

    std::string description() const override { return "local:" + file_.string(); }

private:
    StoreEntry to_entry(const Entries::value_type& item) const {
        return StoreEntry{item.first, item.second.value, item.second.revision};
    }

    // Applies a put (value) or a delete (nullopt), writes the file, and queues the notification;
    // a failed write leaves memory as it was.
    Result<void> change(std::string key, std::optional<LocalValue> value) {
        std::optional<LocalValue> previous;
        if (auto found = entries_.find(key); found != entries_.end()) previous = found->second;
        std::int64_t revision = revision_ + 1;
        if (value) {
            value->revision = revision;
            entries_[key] = *value;
        } else {
            entries_.erase(key);
        }
        auto written = write_file_atomic(file_, as_bytes(serialize(revision, entries_)), 0600);
        if (!written) {
            if (previous) entries_[key] = std::move(*previous);
            else entries_.erase(key);
            return std::move(written).take_error().context(fmt::format("writing {}", file_.string()));
        }
        revision_ = revision;
        StoreChange notice{std::move(key), std::nullopt, revision};
        if (value) notice.value = std::move(value->value);
        asio::post(ex_, [watchers = watchers_, notice = std::move(notice)] {
            if (!watchers->stopped) watchers->deliver(notice);
        });
        return {};
    }

    asio::any_io_executor ex_;
    std::filesystem::path file_;
    FileLock lock_;
    std::int64_t revision_ = 0;
    Entries entries_;
    std::shared_ptr<Watchers> watchers_;
};

}  // namespace

Result<std::shared_ptr<ClusterStore>> make_local_store(asio::any_io_executor ex, std::filesystem::path file) {
    auto lock_path = file;
    lock_path += ".lock";
    auto lock = FileLock::try_acquire(lock_path);
    if (!lock) return std::move(lock).take_error().context(fmt::format("cluster store {}", file.string()));
    if (!lock->has_value()) {
        return make_error("cluster store {}: in use by another store (lock {} is held)", file.string(),
                          lock_path.string());
    }
    std::int64_t revision = 0;
    Entries entries;
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(file, ec))) {
        auto text = read_text_file(file, store_max_file_bytes);
        if (!text) return std::move(text).take_error().context(fmt::format("cluster store {}", file.string()));
        if (auto parsed = parse(*text, revision, entries); !parsed) {
            return std::move(parsed).take_error().context(
                fmt::format("cluster store {} is corrupt (move it away to start empty)", file.string()));
        }
    }
    return std::shared_ptr<ClusterStore>(
        std::make_shared<LocalStore>(std::move(ex), std::move(file), std::move(**lock), revision, std::move(entries)));
}

}  // namespace dstack::app
