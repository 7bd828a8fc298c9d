// The embedded single-node store: the whole state in memory; on disk a snapshot (one JSON file,
// replaced atomically) and a journal beside it (FILE.journal: one JSON line per change, appended
// and fsync'd before the change is visible). The snapshot is rewritten, and the journal emptied,
// once the journal outgrows it: a change costs one appended line, not a rewrite of every record
// (100k instances make a snapshot of tens of MB). A crash leaves at most a torn last line, which
// is dropped at the next start. Watches are in-process: changes are posted in revision order.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <asio/post.hpp>
#include <fmt/format.h>
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

constexpr std::size_t min_journal_bytes_before_compaction = 4 * 1024 * 1024;

std::filesystem::path journal_path(const std::filesystem::path& file) {
    auto path = file;
    path += ".journal";
    return path;
}

std::string journal_line(const std::string& key, const std::optional<std::string>& value, std::int64_t revision) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    json::key(out, "key");
    json::string(out, to_base64(key));
    json::key(out, "value");
    if (value) json::string(out, to_base64(*value)); else out.Null();
    json::key(out, "revision");
    json::string(out, std::to_string(revision));
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// Replays the journal's changes after the snapshot's revision. A last line without its newline is
// a write the crash interrupted (never acknowledged): dropped. Anything else wrong is corruption.
Result<void> replay_journal(std::string_view text, std::int64_t& revision, Entries& entries) {
    std::size_t pos = 0, line_number = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string_view::npos) break;  // torn last line
        auto line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_number;
        auto parse_line = [&]() -> Result<void> {
            DSTACK_TRY(auto document, json::read_json(line, {store_max_value_bytes * 2 + store_max_key_bytes * 2, 2}));
            DSTACK_TRY(auto item, document.root().object());
            DSTACK_TRY(auto line_revision, int64_field(item, "revision"));
            if (line_revision <= revision) return {};  // already in the snapshot
            if (line_revision != revision + 1) return make_error("revision {} follows {}", line_revision, revision);
            if (!item.optional("key")) {  // a lock's change: the revision only
                revision = line_revision;
                return {};
            }
            DSTACK_TRY(auto key, base64_field(item, "key", store_max_key_bytes));
            auto value = item.optional("value");
            if (!value || value->is_null()) {
                entries.erase(key);
            } else {
                LocalValue entry;
                DSTACK_TRY(entry.value, base64_field(item, "value", store_max_value_bytes));
                entry.revision = line_revision;
                entries[std::move(key)] = std::move(entry);
            }
            revision = line_revision;
            return {};
        };
        if (auto applied = parse_line(); !applied) return applied.error().context(fmt::format("journal line {}", line_number));
    }
    return {};
}

class LocalStore final : public ClusterStore {
public:
    LocalStore(asio::any_io_executor ex, std::filesystem::path file, FileLock lock, std::int64_t revision, Entries entries,
               std::size_t journal_bytes)
        : ex_(std::move(ex)), file_(std::move(file)), lock_(std::move(lock)), revision_(revision),
          entries_(std::move(entries)), watchers_(std::make_shared<Watchers>()), journal_bytes_(journal_bytes) {}
    ~LocalStore() override {
        stop();
        if (journal_fd_ >= 0) ::close(journal_fd_);
    }

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

    // Appends one line to the journal and syncs it.
    Result<void> append_journal(const std::string& line) {
        if (journal_fd_ < 0) {
            journal_fd_ = ::open(journal_path(file_).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (journal_fd_ < 0) return make_error("cannot open {}: {}", journal_path(file_).string(), std::strerror(errno));
        }
        std::size_t done = 0;
        while (done < line.size()) {
            ssize_t n = ::write(journal_fd_, line.data() + done, line.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return make_error("cannot write {}: {}", journal_path(file_).string(), std::strerror(errno));
            done += static_cast<std::size_t>(n);
        }
        if (::fdatasync(journal_fd_) != 0) return make_error("cannot sync {}: {}", journal_path(file_).string(), std::strerror(errno));
        journal_bytes_ += line.size();
        return {};
    }

    // The snapshot again, then an empty journal (a crash between the two leaves journal lines the
    // snapshot already holds: skipped at the next start).
    Result<void> compact() {
        DSTACK_CHECK(write_file_atomic(file_, as_bytes(serialize(revision_, entries_)), 0600));
        if (journal_fd_ >= 0 && ::ftruncate(journal_fd_, 0) != 0) {
            return make_error("cannot truncate {}: {}", journal_path(file_).string(), std::strerror(errno));
        }
        journal_bytes_ = 0;
        snapshot_bytes_ = 0;
        for (const auto& [key, entry] : entries_) snapshot_bytes_ += key.size() + entry.value.size();
        return {};
    }

    // Applies a put (value) or a delete (nullopt), journals it, and queues the notification; a
    // failed write leaves memory as it was. Locks live in memory only.
    Result<void> change(std::string key, std::optional<LocalValue> value) {
        std::optional<LocalValue> previous;
        if (auto found = entries_.find(key); found != entries_.end()) previous = found->second;
        std::int64_t revision = revision_ + 1;
        bool durable = value ? !value->lock : !(previous && previous->lock);
        // A lock's change keeps only its revision on disk (revisions never go back after a restart).
        std::string line = durable ? journal_line(key, value ? std::optional<std::string>(value->value) : std::nullopt, revision)
                                   : fmt::format("{{\"revision\":\"{}\"}}\n", revision);
        auto written = append_journal(line);
        if (!written) return std::move(written).take_error().context(fmt::format("writing {}", file_.string()));
        if (value) {
            value->revision = revision;
            entries_[key] = *value;
        } else {
            entries_.erase(key);
        }
        revision_ = revision;
        if (journal_bytes_ > std::max(min_journal_bytes_before_compaction, snapshot_bytes_)) {
            // The change is durable in the journal already; a failed compaction is retried next time.
            (void)compact();
        }
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
    int journal_fd_ = -1;
    std::size_t journal_bytes_ = 0;
    std::size_t snapshot_bytes_ = 0;
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
    std::size_t journal_bytes = 0;
    auto journal = journal_path(file);
    if (std::filesystem::exists(std::filesystem::symlink_status(journal, ec))) {
        auto text = read_text_file(journal, store_max_file_bytes);
        if (!text) return std::move(text).take_error().context(fmt::format("cluster store {}", journal.string()));
        if (auto replayed = replay_journal(*text, revision, entries); !replayed) {
            return std::move(replayed).take_error().context(
                fmt::format("cluster store {} is corrupt (move it away to start from the snapshot)", journal.string()));
        }
        journal_bytes = text->size();
        // A torn last line would be glued to the next append: start a clean journal now.
        if (!text->empty() && text->back() != '\n') {
            auto snapshot = write_file_atomic(file, as_bytes(serialize(revision, entries)), 0600);
            if (!snapshot) return std::move(snapshot).take_error();
            std::filesystem::resize_file(journal, 0, ec);
            if (ec) return make_error("cannot truncate {}: {}", journal.string(), ec.message());
            journal_bytes = 0;
        }
    }
    return std::shared_ptr<ClusterStore>(std::make_shared<LocalStore>(std::move(ex), std::move(file), std::move(**lock), revision,
                                                                      std::move(entries), journal_bytes));
}

}  // namespace dstack::app
