// The etcd v3 store over etcd's JSON gateway (grpc-gateway, /v3/...). Unary calls go through our
// HTTP client (one request per connection). A watch is a response that never ends (chunked, one
// JSON message per line), which that client cannot hand out piece by piece, so it is read here over
// a connection of its own with the same HTTP parser, draining the body as it grows.
#include <map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <rapidjson/stringbuffer.h>

#include "cluster-store-codec.hpp"
#include "dstack/app/cluster-store.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/connect.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/net/http-parser.hpp"
#include "dstack/net/tls.hpp"

namespace dstack::app {

namespace {

using namespace store_detail;
namespace http = net::http;

constexpr int max_json_depth = 16;
// One watch message (a batch of events of whole revisions) or one line without its end.
constexpr std::size_t max_watch_message_bytes = 16 * 1024 * 1024;
constexpr std::size_t max_kvs = 1'000'000;

// The response body a watch has received so far, taken out piece by piece.
class StreamingResponseParser : public http::ResponseParser {
public:
    using ResponseParser::ResponseParser;
    std::string drain_body() {
        std::string out;
        out.swap(body_);
        return out;
    }
};

struct Held {
    std::string holder;
    std::string lease;  // etcd's lease ID, kept as the decimal string the gateway uses
    std::chrono::seconds ttl{0};
};

struct WatchSpec {
    std::string prefix;     // the caller's, without key_prefix
    std::int64_t next = 0;  // the next revision to ask for; 0: from now
    std::function<void(const StoreChange&)> on_change;
    std::function<void()> on_reset;
};

// What the store and its background coroutines (watches, lease keep-alive) share.
struct Core {
    asio::any_io_executor ex;
    EtcdOptions options;
    std::vector<http::Endpoint> endpoints;
    std::size_t current = 0;  // the endpoint that answered last
    bool stopped = false;
    bool keepalive_running = false;
    std::map<std::string, Held> held;  // by full etcd key
    std::vector<std::weak_ptr<net::Stream>> streams;
    std::vector<std::weak_ptr<asio::steady_timer>> timers;

    std::string full_key(std::string_view key) const { return options.key_prefix + std::string(key); }

    http::ClientOptions client_options() const {
        http::ClientOptions out;
        out.connect_timeout = options.timeout;
        out.total_timeout = options.timeout;
        out.max_response_bytes = options.max_response_bytes;
        out.tls_config = tls_config("");
        return out;
    }

    net::tls::ClientConfig tls_config(std::string server_name) const {
        net::tls::ClientConfig config;
        config.server_name = std::move(server_name);
        config.ca_pem = options.ca_pem;
        config.handshake_timeout = options.timeout;
        if (!options.client_cert_pem.empty()) {
            config.client_certificate = net::tls::CertifiedKey{options.client_cert_pem, options.client_key_pem};
        }
        return config;
    }

    void stop() {
        stopped = true;
        for (auto& weak : streams) {
            if (auto stream = weak.lock()) stream->close();
        }
        for (auto& weak : timers) {
            if (auto timer = weak.lock()) timer->cancel();
        }
        streams.clear();
        timers.clear();
    }

    template <typename T>
    static void prune(std::vector<std::weak_ptr<T>>& list) {
        std::erase_if(list, [](const std::weak_ptr<T>& weak) { return weak.expired(); });
    }
};

// Waits, unless stop() comes first (then returns at once).
asio::awaitable<void> pause(std::shared_ptr<Core> core, std::chrono::milliseconds duration) {
    if (core->stopped) co_return;
    auto timer = std::make_shared<asio::steady_timer>(core->ex, duration);
    Core::prune(core->timers);
    core->timers.push_back(timer);
    std::error_code ignored;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

std::string write_json(const std::function<void(json::Writer&)>& body) {
    rapidjson::StringBuffer buffer;
    json::Writer out(buffer);
    out.StartObject();
    body(out);
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

void field(json::Writer& out, std::string_view name, std::string_view text) {
    json::key(out, name);
    json::string(out, text);
}

// Reads etcd's error document ({"error": "...", "message": "...", "code": N}) for a message.
std::string error_message(std::string_view body) {
    auto document = json::read_json(body, {64 * 1024, max_json_depth});
    if (document) {
        if (auto root = document->root().object()) {
            for (auto name : {"message", "error"}) {
                if (auto text = root->string(name)) return *text;
            }
        }
    }
    return body.size() > 200 ? std::string(body.substr(0, 200)) + "..." : std::string(body);
}

// A unary call: POST /v3/<path> to the current endpoint, then to the others on connection failure.
asio::awaitable<Result<json::Document>> call(std::shared_ptr<Core> core, std::string path, std::string body) {
    std::vector<std::string> failures;
    for (std::size_t attempt = 0; attempt < core->endpoints.size(); ++attempt) {
        std::size_t index = (core->current + attempt) % core->endpoints.size();
        const auto& endpoint = core->endpoints[index];
        http::Request request;
        request.method = "POST";
        request.target = "/v3/" + path;
        request.headers.add("Content-Type", "application/json");
        request.body = body;
        auto response = co_await http::send_request(core->ex, endpoint, std::move(request), core->client_options());
        if (!response) {
            failures.push_back(response.error().message);
            continue;
        }
        core->current = index;
        std::string where = fmt::format("etcd {}/v3/{}", endpoint.description(), path);
        if (response->status != 200) {
            co_return make_error("{}: {} (HTTP {})", where, error_message(response->body), response->status);
        }
        json::ReadLimits limits;
        limits.max_bytes = core->options.max_response_bytes;
        limits.max_depth = max_json_depth;
        auto document = json::read_json(response->body, limits);
        if (!document) co_return std::move(document).take_error().context(where);
        if (!document->root().is_object()) co_return make_error("{}: the answer is not a JSON object", where);
        co_return std::move(*document);
    }
    std::string joined;
    for (const auto& failure : failures) joined += (joined.empty() ? "" : "; ") + failure;
    co_return make_error("no etcd endpoint answered: {}", joined);
}

// The header's revision of an answer.
Result<std::int64_t> header_revision(const json::Object& root) {
    DSTACK_TRY(auto header, root.object("header"));
    return int64_field(header, "revision");
}

Result<StoreEntry> read_kv(const Core& core, const json::Object& kv) {
    StoreEntry entry;
    DSTACK_TRY(auto key, base64_field(kv, "key", core.options.key_prefix.size() + store_max_key_bytes));
    if (key.compare(0, core.options.key_prefix.size(), core.options.key_prefix) != 0) {
        return make_error("{}.key: a key outside the prefix '{}'", kv.path(), core.options.key_prefix);
    }
    entry.key = key.substr(core.options.key_prefix.size());
    DSTACK_TRY(entry.value, base64_field(kv, "value", store_max_value_bytes));
    DSTACK_TRY(entry.revision, int64_field(kv, "mod_revision"));
    return entry;
}

Result<std::vector<StoreEntry>> read_kvs(const Core& core, const json::Object& root) {
    std::vector<StoreEntry> out;
    auto kvs = root.optional("kvs");
    if (!kvs) return out;
    DSTACK_TRY(auto list, kvs->array(max_kvs));
    for (std::size_t i = 0; i < list.size(); ++i) {
        DSTACK_TRY(auto kv, list[i].object());
        DSTACK_TRY(auto entry, read_kv(core, kv));
        out.push_back(std::move(entry));
    }
    return out;
}

// The whole prefix and the revision it was read at.
asio::awaitable<Result<std::pair<std::vector<StoreEntry>, std::int64_t>>> range_prefix(std::shared_ptr<Core> core,
                                                                                     std::string prefix) {
    std::string start = core->full_key(prefix);
    auto body = write_json([&](json::Writer& out) {
        field(out, "key", to_base64(start));
        field(out, "range_end", to_base64(prefix_end(start)));
    });
    auto answer = co_await call(core, "kv/range", std::move(body));
    if (!answer) co_return std::move(answer).take_error();
    auto root = answer->root().object();
    if (!root) co_return std::move(root).take_error().context("etcd kv/range");
    auto revision = header_revision(*root);
    if (!revision) co_return std::move(revision).take_error().context("etcd kv/range");
    auto entries = read_kvs(*core, *root);
    if (!entries) co_return std::move(entries).take_error().context("etcd kv/range");
    co_return std::make_pair(std::move(*entries), *revision);
}

asio::awaitable<Result<void>> revoke(std::shared_ptr<Core> core, std::string lease) {
    auto answer = co_await call(core, "lease/revoke", write_json([&](json::Writer& out) { field(out, "ID", lease); }));
    if (!answer) co_return std::move(answer).take_error();
    co_return Result<void>();
}

// Renews every held lease every ttl/3 while any is held; a lease etcd no longer knows means the
// lock is lost (it expired while we could not reach etcd): forgotten, and said in the log.
asio::awaitable<void> keep_alive(std::shared_ptr<Core> core) {
    while (!core->stopped && !core->held.empty()) {
        auto interval = std::chrono::milliseconds(std::chrono::hours(1));
        for (const auto& [key, held] : core->held) {
            interval = std::min<std::chrono::milliseconds>(interval, std::chrono::duration_cast<std::chrono::milliseconds>(held.ttl) / 3);
        }
        co_await pause(core, std::max(interval, std::chrono::milliseconds(300)));
        std::vector<std::pair<std::string, std::string>> leases;
        for (const auto& [key, held] : core->held) leases.emplace_back(key, held.lease);
        for (const auto& [key, lease] : leases) {
            if (core->stopped) break;
            auto answer = co_await call(core, "lease/keepalive", write_json([&](json::Writer& out) { field(out, "ID", lease); }));
            auto still = core->held.find(key);
            if (still == core->held.end() || still->second.lease != lease) continue;  // released meanwhile
            if (!answer) {
                log::warn("cluster store: renewing the lock on {}: {}", key, answer.error().message);
                continue;
            }
            std::int64_t ttl = 0;
            if (auto root = answer->root().object()) {
                if (auto result = root->object("result")) ttl = int64_field(*result, "TTL").value_or(0);
            }
            if (ttl <= 0) {
                log::warn("cluster store: the lock on {} was lost (its lease expired)", key);
                core->held.erase(still);
            }
        }
    }
    core->keepalive_running = false;
}

// --- watch -------------------------------------------------------------------------------------

struct WatchOutcome {
    bool compacted = false;
    Error error;
};

asio::awaitable<Result<net::StreamPtr>> open_stream(std::shared_ptr<Core> core, const http::Endpoint& endpoint) {
    auto connected = co_await net::connect_tcp(core->ex, endpoint.host, endpoint.port, core->options.timeout);
    if (!connected) co_return std::move(connected).take_error();
    if (!endpoint.tls) co_return std::move(*connected);
    auto context = net::tls::make_client_context(core->tls_config(endpoint.host));
    if (!context) co_return std::move(context).take_error();
    auto secured = co_await net::tls::TlsStream::connect(std::move(*connected), *context);
    if (!secured) co_return std::move(secured).take_error().context("TLS handshake");
    co_return net::StreamPtr(std::move(*secured));
}

// Closes `stream` unless `created` turns true within the timeout.
asio::awaitable<void> creation_deadline(std::shared_ptr<Core> core, std::weak_ptr<net::Stream> stream,
                                        std::shared_ptr<bool> created) {
    co_await pause(core, core->options.timeout);
    if (*created) co_return;
    if (auto alive = stream.lock()) alive->close();
}

// One message of the watch stream. Returns false (with `outcome` set) when the watch must end.
bool handle_watch_message(Core& core, WatchSpec& spec, std::string_view line, bool& created, WatchOutcome& outcome,
                          const std::string& where) {
    auto fail = [&](Error error) {
        outcome.error = std::move(error).context(where);
        return false;
    };
    auto document = json::read_json(line, {max_watch_message_bytes, max_json_depth});
    if (!document) return fail(std::move(document).take_error());
    auto root = document->root().object();
    if (!root) return fail(std::move(root).take_error());
    if (auto error = root->optional("error")) {
        std::string message = "the watch failed";
        if (auto object = error->object()) {
            if (auto text = object->string("message")) message = *text;
        } else if (auto text = error->string()) {
            message = *text;
        }
        return fail(Error{message});
    }
    auto result = root->object("result");
    if (!result) return fail(std::move(result).take_error());
    auto compact = int64_field(*result, "compact_revision");
    if (!compact) return fail(std::move(compact).take_error());
    bool canceled = false;
    if (auto flag = result->optional("canceled")) canceled = flag->boolean().value_or(false);
    if (*compact > 0) {
        outcome.compacted = true;
        return fail(make_error("revision {} was compacted (etcd keeps {} and later)", spec.next, *compact));
    }
    if (canceled) {
        std::string reason = "no reason given";
        if (auto text = result->optional("cancel_reason")) reason = text->string().value_or(reason);
        return fail(make_error("etcd canceled the watch: {}", reason));
    }
    if (auto flag = result->optional("created"); flag && flag->boolean().value_or(false)) {
        created = true;
        if (spec.next == 0) {
            auto revision = header_revision(*result);
            if (!revision) return fail(std::move(revision).take_error());
            spec.next = *revision + 1;
        }
    }
    auto events_value = result->optional("events");
    if (!events_value) return true;
    auto events = events_value->array(max_kvs);
    if (!events) return fail(std::move(events).take_error());
    // Parsed in full before any is delivered: a bad message delivers nothing, and is asked for again.
    std::vector<StoreChange> changes;
    for (std::size_t i = 0; i < events->size(); ++i) {
        auto event = (*events)[i].object();
        if (!event) return fail(std::move(event).take_error());
        bool deleted = false;
        if (auto type = event->optional("type")) {
            auto text = type->string();
            if (!text) return fail(std::move(text).take_error());
            if (*text == "DELETE") deleted = true;
            else if (*text != "PUT") return fail(make_error("{}.type: unknown event type '{}'", event->path(), *text));
        }
        auto kv = event->object("kv");
        if (!kv) return fail(std::move(kv).take_error());
        auto entry = read_kv(core, *kv);
        if (!entry) return fail(std::move(entry).take_error());
        StoreChange change{std::move(entry->key), std::nullopt, entry->revision};
        if (!deleted) change.value = std::move(entry->value);
        changes.push_back(std::move(change));
    }
    for (const auto& change : changes) {
        if (core.stopped) return false;
        spec.on_change(change);
        // etcd never splits one revision's events between messages, so the revision is done.
        spec.next = std::max(spec.next, change.revision + 1);
    }
    return true;
}

// One connection's worth of watching; returns why it ended.
asio::awaitable<WatchOutcome> watch_session(std::shared_ptr<Core> core, WatchSpec& spec) {
    WatchOutcome outcome;
    std::shared_ptr<net::Stream> stream;
    const http::Endpoint* endpoint = nullptr;
    std::vector<std::string> failures;
    for (std::size_t attempt = 0; attempt < core->endpoints.size() && !stream; ++attempt) {
        std::size_t index = (core->current + attempt) % core->endpoints.size();
        auto opened = co_await open_stream(core, core->endpoints[index]);
        if (!opened) {
            failures.push_back(fmt::format("{}: {}", core->endpoints[index].description(), opened.error().message));
            continue;
        }
        core->current = index;
        endpoint = &core->endpoints[index];
        stream = std::shared_ptr<net::Stream>(std::move(*opened));
    }
    if (!stream) {
        std::string joined;
        for (const auto& failure : failures) joined += (joined.empty() ? "" : "; ") + failure;
        outcome.error = make_error("no etcd endpoint answered the watch: {}", joined);
        co_return outcome;
    }
    if (core->stopped) {
        stream->close();
        co_return outcome;
    }
    Core::prune(core->streams);
    core->streams.push_back(stream);
    std::string where = fmt::format("etcd {}/v3/watch", endpoint->description());

    std::string start = core->full_key(spec.prefix);
    std::string body = write_json([&](json::Writer& out) {
        json::key(out, "create_request");
        out.StartObject();
        field(out, "key", to_base64(start));
        field(out, "range_end", to_base64(prefix_end(start)));
        if (spec.next > 0) field(out, "start_revision", std::to_string(spec.next));
        out.EndObject();
    });
    std::string request = fmt::format(
        "POST /v3/watch HTTP/1.1\r\nHost: {}\r\nUser-Agent: dstack\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\n\r\n{}",
        endpoint->host_header(), body.size(), body);

    auto created_flag = std::make_shared<bool>(false);
    asio::co_spawn(core->ex, creation_deadline(core, stream, created_flag), asio::detached);
    std::error_code ec;
    co_await stream->write_all(as_bytes(request), ec);
    if (ec) {
        stream->close();
        outcome.error = make_error("{}: sending the request: {}", where, ec.message());
        co_return outcome;
    }

    http::ParserLimits limits;
    limits.max_body_bytes = max_watch_message_bytes;  // per drained piece; lines are bounded below
    limits.max_header_bytes = 64 * 1024;
    limits.max_request_line = 64 * 1024;
    StreamingResponseParser parser(limits);
    parser.set_request_method("POST");
    std::vector<std::uint8_t> buffer(64 * 1024);
    std::string pending;
    bool created = false;
    for (;;) {
        std::size_t n = co_await stream->read_some(buffer, ec);
        if (core->stopped) break;
        auto status = http::ResponseParser::Status::need_more;
        if (n > 0) {
            parser.feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
            status = parser.parse();
        } else if (ec == asio::error::eof) {
            status = parser.finish();
        } else {
            outcome.error = make_error("{}: {}", where,
                                       *created_flag || created ? "reading: " + ec.message()
                                                                : fmt::format("no answer within {} ms ({})",
                                                                              core->options.timeout.count(), ec.message()));
            break;
        }
        if (status == http::ResponseParser::Status::error) {
            outcome.error = make_error("{}: invalid response: {}", where, parser.error().message);
            break;
        }
        if (status == http::ResponseParser::Status::complete) {
            // A watch answer that ends is an error page (or etcd shutting down).
            auto response = parser.take_response();
            if (response.status != 200) {
                outcome.error = make_error("{}: {} (HTTP {})", where, error_message(pending + response.body), response.status);
            } else {
                pending += response.body;
                outcome.error = make_error("{}: the watch stream ended", where);
            }
            break;
        }
        pending += parser.drain_body();
        bool keep_going = true;
        std::size_t newline;
        while (keep_going && (newline = pending.find('\n')) != std::string::npos) {
            std::string line = pending.substr(0, newline);
            pending.erase(0, newline + 1);
            if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
            keep_going = handle_watch_message(*core, spec, line, created, outcome, where);
            if (created) *created_flag = true;
        }
        if (!keep_going) break;
        if (pending.size() > max_watch_message_bytes) {
            outcome.error = make_error("{}: a watch message exceeds the {}-byte limit", where, max_watch_message_bytes);
            break;
        }
        if (ec == asio::error::eof) {
            outcome.error = make_error("{}: the connection closed", where);
            break;
        }
    }
    *created_flag = true;  // the deadline has nothing left to guard
    stream->close();
    co_return outcome;
}

asio::awaitable<void> run_watch(std::shared_ptr<Core> core, WatchSpec spec) {
    while (!core->stopped) {
        auto outcome = co_await watch_session(core, spec);
        if (core->stopped) break;
        if (outcome.compacted) {
            log::info("cluster store: watch on '{}': {}; reloading", spec.prefix, outcome.error.message);
            auto reloaded = co_await range_prefix(core, spec.prefix);
            if (core->stopped) break;
            if (reloaded) {
                if (spec.on_reset) spec.on_reset();
                for (const auto& entry : reloaded->first) {
                    if (core->stopped) break;
                    spec.on_change(StoreChange{entry.key, entry.value, entry.revision});
                }
                spec.next = reloaded->second + 1;
                continue;
            }
            log::warn("cluster store: watch on '{}': reloading: {}", spec.prefix, reloaded.error().message);
        } else {
            log::warn("cluster store: watch on '{}': {}; retrying", spec.prefix, outcome.error.message);
        }
        co_await pause(core, core->options.retry_delay);
    }
}

class EtcdStore final : public ClusterStore {
public:
    explicit EtcdStore(std::shared_ptr<Core> core) : core_(std::move(core)) {}
    ~EtcdStore() override { stop(); }

    asio::awaitable<Result<void>> put(std::string key, std::string value) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        if (auto checked = check_value(value); !checked) co_return std::move(checked).take_error();
        auto body = write_json([&](json::Writer& out) {
            field(out, "key", to_base64(core_->full_key(key)));
            field(out, "value", to_base64(value));
        });
        auto answer = co_await call(core_, "kv/put", std::move(body));
        if (!answer) co_return std::move(answer).take_error();
        co_return Result<void>();
    }

    asio::awaitable<Result<std::optional<StoreEntry>>> get(std::string key) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        auto answer = co_await call(core_, "kv/range",
                                    write_json([&](json::Writer& out) { field(out, "key", to_base64(core_->full_key(key))); }));
        if (!answer) co_return std::move(answer).take_error();
        auto root = answer->root().object();
        if (!root) co_return std::move(root).take_error();
        auto entries = read_kvs(*core_, *root);
        if (!entries) co_return std::move(entries).take_error().context("etcd kv/range");
        if (entries->empty()) co_return std::optional<StoreEntry>();
        if (entries->size() != 1 || (*entries)[0].key != key) co_return make_error("etcd kv/range: an answer for another key");
        co_return std::optional<StoreEntry>(std::move((*entries)[0]));
    }

    asio::awaitable<Result<std::vector<StoreEntry>>> list(std::string prefix) override {
        if (auto checked = check_key(prefix); !checked) co_return std::move(checked).take_error();
        auto ranged = co_await range_prefix(core_, std::move(prefix));
        if (!ranged) co_return std::move(ranged).take_error();
        co_return std::move(ranged->first);
    }

    asio::awaitable<Result<void>> remove(std::string key) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        auto answer = co_await call(core_, "kv/deleterange",
                                    write_json([&](json::Writer& out) { field(out, "key", to_base64(core_->full_key(key))); }));
        if (!answer) co_return std::move(answer).take_error();
        co_return Result<void>();
    }

    asio::awaitable<Result<std::int64_t>> revision() override {
        auto body = write_json([&](json::Writer& out) {
            field(out, "key", to_base64(core_->options.key_prefix));
            json::key(out, "count_only");
            out.Bool(true);
        });
        auto answer = co_await call(core_, "kv/range", std::move(body));
        if (!answer) co_return std::move(answer).take_error();
        auto root = answer->root().object();
        if (!root) co_return std::move(root).take_error();
        auto revision = header_revision(*root);
        if (!revision) co_return std::move(revision).take_error().context("etcd kv/range");
        co_return *revision;
    }

    asio::awaitable<Result<bool>> try_acquire(std::string key, std::string holder, std::chrono::seconds ttl) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        if (auto checked = check_value(holder); !checked) co_return std::move(checked).take_error();
        if (ttl.count() <= 0) co_return make_error("lock '{}': the ttl must be positive", key);
        std::string full = core_->full_key(key);
        if (auto found = core_->held.find(full); found != core_->held.end() && found->second.holder == holder) {
            co_return true;
        }
        auto granted = co_await call(core_, "lease/grant", write_json([&](json::Writer& out) {
            field(out, "TTL", std::to_string(ttl.count()));
        }));
        if (!granted) co_return std::move(granted).take_error().context(fmt::format("lock '{}'", key));
        auto grant_root = granted->root().object();
        if (!grant_root) co_return std::move(grant_root).take_error();
        auto lease = grant_root->string("ID");
        if (!lease) co_return std::move(lease).take_error().context("etcd lease/grant");

        std::string full64 = to_base64(full);
        auto body = write_json([&](json::Writer& out) {
            json::key(out, "compare");
            out.StartArray();
            out.StartObject();
            field(out, "target", "CREATE");
            field(out, "key", full64);
            field(out, "create_revision", "0");
            out.EndObject();
            out.EndArray();
            json::key(out, "success");
            out.StartArray();
            out.StartObject();
            json::key(out, "request_put");
            out.StartObject();
            field(out, "key", full64);
            field(out, "value", to_base64(holder));
            field(out, "lease", *lease);
            out.EndObject();
            out.EndObject();
            out.EndArray();
        });
        auto answer = co_await call(core_, "kv/txn", std::move(body));
        bool succeeded = false;
        if (answer) {
            if (auto root = answer->root().object()) {
                if (auto flag = root->optional("succeeded")) succeeded = flag->boolean().value_or(false);
            }
        }
        if (!succeeded) {
            (void)co_await revoke(core_, *lease);  // best effort: unrevoked, it expires by itself
            if (!answer) co_return std::move(answer).take_error().context(fmt::format("lock '{}'", key));
            co_return false;
        }
        Held held;
        held.holder = std::move(holder);
        held.lease = std::move(*lease);
        held.ttl = ttl;
        core_->held[full] = std::move(held);
        if (!core_->keepalive_running && !core_->stopped) {
            core_->keepalive_running = true;
            asio::co_spawn(core_->ex, keep_alive(core_), asio::detached);
        }
        co_return true;
    }

    asio::awaitable<Result<void>> release(std::string key, std::string holder) override {
        if (auto checked = check_key(key); !checked) co_return std::move(checked).take_error();
        std::string full = core_->full_key(key);
        std::string full64 = to_base64(full);
        auto body = write_json([&](json::Writer& out) {
            json::key(out, "compare");
            out.StartArray();
            out.StartObject();
            field(out, "target", "VALUE");
            field(out, "key", full64);
            field(out, "value", to_base64(holder));
            out.EndObject();
            out.EndArray();
            json::key(out, "success");
            out.StartArray();
            out.StartObject();
            json::key(out, "request_delete_range");
            out.StartObject();
            field(out, "key", full64);
            out.EndObject();
            out.EndObject();
            out.EndArray();
        });
        auto answer = co_await call(core_, "kv/txn", std::move(body));
        if (!answer) co_return std::move(answer).take_error().context(fmt::format("releasing lock '{}'", key));
        if (auto found = core_->held.find(full); found != core_->held.end() && found->second.holder == holder) {
            std::string lease = found->second.lease;
            core_->held.erase(found);
            auto revoked = co_await revoke(core_, lease);
            if (!revoked) log::warn("cluster store: revoking the lease of lock '{}': {}", key, revoked.error().message);
        }
        co_return Result<void>();
    }

    void watch(std::string prefix, std::int64_t after_revision, std::function<void(const StoreChange&)> on_change,
               std::function<void()> on_reset) override {
        if (core_->stopped) return;
        WatchSpec spec;
        spec.prefix = std::move(prefix);
        spec.next = after_revision > 0 ? after_revision + 1 : 0;
        spec.on_change = std::move(on_change);
        spec.on_reset = std::move(on_reset);
        asio::co_spawn(core_->ex, run_watch(core_, std::move(spec)), asio::detached);
    }

    void stop() override { core_->stop(); }

    std::string description() const override {
        std::string out = "etcd:";
        for (std::size_t i = 0; i < core_->endpoints.size(); ++i) {
            out += (i ? "," : "") + core_->endpoints[i].description();
        }
        return out;
    }

private:
    std::shared_ptr<Core> core_;
};

}  // namespace

Result<std::shared_ptr<ClusterStore>> make_etcd_store(asio::any_io_executor ex, EtcdOptions options) {
    if (options.endpoints.empty()) return make_error("etcd: no endpoint given");
    if (options.timeout.count() <= 0) return make_error("etcd: the timeout must be positive");
    if (options.key_prefix.size() > store_max_key_bytes) return make_error("etcd: the key prefix is too long");
    if (options.client_cert_pem.empty() != options.client_key_pem.empty()) {
        return make_error("etcd: a client certificate needs its key, and a key its certificate");
    }
    auto core = std::make_shared<Core>();
    for (const auto& text : options.endpoints) {
        auto url = http::parse_url(text);
        if (!url) return std::move(url).take_error().context("etcd endpoint");
        if (url->endpoint.kind != http::Endpoint::Kind::tcp) {
            return make_error("etcd endpoint '{}': expected http:// or https://", text);
        }
        if (url->target != "/") return make_error("etcd endpoint '{}': no path expected", text);
        if (url->endpoint.tls && options.ca_pem.empty()) {
            return make_error("etcd endpoint '{}': https needs the CA certificate of the etcd servers", text);
        }
        core->endpoints.push_back(url->endpoint);
    }
    core->ex = std::move(ex);
    core->options = std::move(options);
    return std::shared_ptr<ClusterStore>(std::make_shared<EtcdStore>(std::move(core)));
}

}  // namespace dstack::app
