// The cluster stores against the real thing: the embedded store on a temporary file, and the etcd
// store against a real etcd 3.4 (Debian's etcd-server, /usr/bin/etcd) started on 127.0.0.1 ports
// the kernel picked, killed (and restarted) by the tests. The behaviour both must share runs as one
// test body against each.
#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../net/net-test.hpp"
#include "dstack/app/cluster-store.hpp"
#include "dstack/base/file.hpp"
#include "dstack/net/http-client.hpp"

extern char** environ;

using namespace dstack;
using namespace std::chrono_literals;
using app::ClusterStore;
using app::StoreChange;
using app::StoreEntry;

namespace {

constexpr const char* etcd_binary = "/usr/bin/etcd";

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

// Runs the io_context until `done()` holds or `limit` passes; returns done().
template <typename Predicate>
bool run_until(asio::io_context& io, Predicate done, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.run_one_for(20ms);
        if (io.stopped()) io.restart();
    }
    return done();
}

void run_for(asio::io_context& io, std::chrono::milliseconds duration) {
    run_until(io, [] { return false; }, duration);
}

// A real single-member etcd on loopback; the data directory survives restart().
class EtcdServer {
public:
    EtcdServer() : client_port_(free_port()), peer_port_(free_port()) { start(); }
    ~EtcdServer() { kill_now(); }

    std::string url() const { return fmt::format("http://127.0.0.1:{}", client_port_); }

    void start() {
        std::string client = url();
        std::string peer = fmt::format("http://127.0.0.1:{}", peer_port_);
        std::vector<std::string> args = {etcd_binary,
                                         "--name", "default",
                                         "--data-dir", (dir_.path / "data").string(),
                                         "--listen-client-urls", client,
                                         "--advertise-client-urls", client,
                                         "--listen-peer-urls", peer,
                                         "--initial-advertise-peer-urls", peer,
                                         "--initial-cluster", "default=" + peer};
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        std::string log = (dir_.path / "etcd.log").string();
        posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        REQUIRE_MESSAGE(::posix_spawn(&pid_, etcd_binary, &actions, nullptr, argv.data(), environ) == 0,
                        "cannot start /usr/bin/etcd (Debian package etcd-server)");
        posix_spawn_file_actions_destroy(&actions);
        wait_healthy();
    }

    void kill_now() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    void restart() {
        kill_now();
        start();
    }

    // POST /v3/<path> with a JSON body, straight to etcd (for what the store does not offer).
    net::http::Response post(const std::string& path, const std::string& body) {
        asio::io_context io;
        auto response = net::test::run(io, net::http::post(io.get_executor(), url() + "/v3/" + path, body));
        REQUIRE_MESSAGE(response.ok(), (response.ok() ? "" : response.error().message));
        return std::move(*response);
    }

private:
    void wait_healthy() {
        asio::io_context io;
        auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            net::http::ClientOptions options;
            options.total_timeout = 500ms;
            auto response = net::test::run(io, net::http::get(io.get_executor(), url() + "/health", options));
            if (response.ok() && response->status == 200 && response->body.find("true") != std::string::npos) return;
            std::this_thread::sleep_for(100ms);
        }
        auto log = read_text_file(dir_.path / "etcd.log", 1 << 20);
        std::string text = log.ok() ? *log : std::string();
        FAIL("etcd did not become healthy within 10 s; its log ends: " << text.substr(text.size() > 2000 ? text.size() - 2000 : 0));
    }

    net::test::TempDir dir_;
    std::uint16_t client_port_, peer_port_;
    pid_t pid_ = -1;
};

std::shared_ptr<ClusterStore> etcd_store(asio::io_context& io, std::vector<std::string> endpoints,
                                         std::chrono::milliseconds retry_delay = 200ms) {
    app::EtcdOptions options;
    options.endpoints = std::move(endpoints);
    options.timeout = 2s;
    options.retry_delay = retry_delay;
    auto made = app::make_etcd_store(io.get_executor(), options);
    REQUIRE_MESSAGE(made.ok(), (made.ok() ? "" : made.error().message));
    return std::move(*made);
}

std::shared_ptr<ClusterStore> local_store(asio::io_context& io, const std::filesystem::path& file) {
    auto made = app::make_local_store(io.get_executor(), file);
    REQUIRE_MESSAGE(made.ok(), (made.ok() ? "" : made.error().message));
    return std::move(*made);
}

template <typename T>
T ok(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(*result);
}

void ok(Result<void> result) { REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message)); }

// What a watch delivered, one line per change: "put KEY=VALUE" or "del KEY"; "reset" for on_reset.
struct Recorder {
    std::vector<std::string> seen;
    std::vector<std::int64_t> revisions;

    void watch(ClusterStore& store, std::string prefix, std::int64_t after) {
        store.watch(
            std::move(prefix), after,
            [this](const StoreChange& change) {
                seen.push_back(change.value ? "put " + change.key + "=" + *change.value : "del " + change.key);
                revisions.push_back(change.revision);
            },
            [this] { seen.push_back("reset"); });
    }
};

// --- the behaviour both stores share -----------------------------------------------------------

void check_key_value(asio::io_context& io, ClusterStore& store) {
    CHECK_FALSE(ok(net::test::run(io, store.get("kv/a"))).has_value());
    ok(net::test::run(io, store.put("kv/a", "1")));
    ok(net::test::run(io, store.put("kv/b", std::string("\0\xff binary", 9))));
    ok(net::test::run(io, store.put("kv/c", "")));
    ok(net::test::run(io, store.put("other", "x")));
    auto a = ok(net::test::run(io, store.get("kv/a")));
    REQUIRE(a.has_value());
    CHECK(a->key == "kv/a");
    CHECK(a->value == "1");
    CHECK(a->revision > 0);
    ok(net::test::run(io, store.put("kv/a", "2")));
    auto a2 = ok(net::test::run(io, store.get("kv/a")));
    REQUIRE(a2.has_value());
    CHECK(a2->value == "2");
    CHECK(a2->revision > a->revision);

    auto listed = ok(net::test::run(io, store.list("kv/")));
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].key == "kv/a");
    CHECK(listed[1].key == "kv/b");
    CHECK(listed[1].value == std::string("\0\xff binary", 9));
    CHECK(listed[2].key == "kv/c");
    CHECK(listed[2].value.empty());
    CHECK(ok(net::test::run(io, store.list(""))).size() == 4);

    ok(net::test::run(io, store.remove("kv/a")));
    ok(net::test::run(io, store.remove("kv/absent")));  // no error
    CHECK_FALSE(ok(net::test::run(io, store.get("kv/a"))).has_value());
    CHECK(ok(net::test::run(io, store.list("kv/"))).size() == 2);
    CHECK(ok(net::test::run(io, store.revision())) >= a2->revision + 1);

    auto too_big = net::test::run(io, store.put("kv/big", std::string(app::store_max_value_bytes + 1, 'x')));
    REQUIRE_FALSE(too_big.ok());
    CHECK(too_big.error().message.find("exceeds the 1048576-byte limit") != std::string::npos);
    CHECK_FALSE(net::test::run(io, store.put(std::string(app::store_max_key_bytes + 1, 'k'), "v")).ok());
    CHECK_FALSE(ok(net::test::run(io, store.get("kv/big"))).has_value());
}

void check_watch_order(asio::io_context& io, ClusterStore& store) {
    Recorder recorder;
    auto start = ok(net::test::run(io, store.revision()));
    recorder.watch(store, "w/", start);
    ok(net::test::run(io, store.put("w/a", "1")));
    ok(net::test::run(io, store.put("w/b", "2")));
    ok(net::test::run(io, store.remove("w/a")));
    ok(net::test::run(io, store.put("x/outside", "no")));
    ok(net::test::run(io, store.put("w/b", "3")));
    std::vector<std::string> expected = {"put w/a=1", "put w/b=2", "del w/a", "put w/b=3"};
    CHECK(run_until(io, [&] { return recorder.seen.size() >= expected.size(); }));
    run_for(io, 200ms);  // nothing more may come
    CHECK(recorder.seen == expected);
    for (std::size_t i = 1; i < recorder.revisions.size(); ++i) CHECK(recorder.revisions[i] > recorder.revisions[i - 1]);

    store.stop();
    auto before = recorder.seen.size();
    ok(net::test::run(io, store.put("w/c", "after stop")));  // calls still work; watches are over
    run_for(io, 300ms);
    CHECK(recorder.seen.size() == before);
}

// `a` and `b` are two stores on the same data (for the embedded store, one store and two holders).
void check_lock_exclusivity(asio::io_context& io, ClusterStore& a, ClusterStore& b) {
    CHECK(ok(net::test::run(io, a.try_acquire("locks/acme", "node-a", 10s))));
    CHECK_FALSE(ok(net::test::run(io, b.try_acquire("locks/acme", "node-b", 10s))));
    CHECK(ok(net::test::run(io, a.try_acquire("locks/acme", "node-a", 10s))));  // held already
    auto held = ok(net::test::run(io, b.get("locks/acme")));
    REQUIRE(held.has_value());
    CHECK(held->value == "node-a");
    ok(net::test::run(io, b.release("locks/acme", "node-b")));  // not b's: stays
    CHECK(ok(net::test::run(io, b.get("locks/acme"))).has_value());
    CHECK_FALSE(ok(net::test::run(io, b.try_acquire("locks/acme", "node-b", 10s))));
    ok(net::test::run(io, a.release("locks/acme", "node-a")));
    CHECK_FALSE(ok(net::test::run(io, b.get("locks/acme"))).has_value());
    CHECK(ok(net::test::run(io, b.try_acquire("locks/acme", "node-b", 10s))));
    CHECK_FALSE(ok(net::test::run(io, a.try_acquire("locks/acme", "node-a", 10s))));
    ok(net::test::run(io, b.release("locks/acme", "node-b")));
}

}  // namespace

// --- the embedded store ------------------------------------------------------------------------

TEST_CASE("cluster store (local): put, get, list, remove, size limits") {
    net::test::TempDir dir;
    asio::io_context io;
    auto store = local_store(io, dir.path / "store.json");
    CHECK(store->description() == "local:" + (dir.path / "store.json").string());
    check_key_value(io, *store);
}

TEST_CASE("cluster store (local): a watch sees puts and deletes in order, and nothing after stop") {
    net::test::TempDir dir;
    asio::io_context io;
    auto store = local_store(io, dir.path / "store.json");
    check_watch_order(io, *store);
}

TEST_CASE("cluster store (local): locks are exclusive between holders") {
    net::test::TempDir dir;
    asio::io_context io;
    auto store = local_store(io, dir.path / "store.json");
    check_lock_exclusivity(io, *store, *store);
}

TEST_CASE("cluster store (local): persistence across reopen, a private file, locks not persisted") {
    net::test::TempDir dir;
    auto file = dir.path / "store.json";
    asio::io_context io;
    std::int64_t revision = 0;
    {
        auto store = local_store(io, file);
        ok(net::test::run(io, store->put("routes/a", "one")));
        ok(net::test::run(io, store->put("routes/b", "two")));
        ok(net::test::run(io, store->remove("routes/a")));
        CHECK(ok(net::test::run(io, store->try_acquire("locks/x", "me", 5s))));
        revision = ok(net::test::run(io, store->revision()));
        // A second store on the same file is refused while the first lives.
        auto second = app::make_local_store(io.get_executor(), file);
        REQUIRE_FALSE(second.ok());
        CHECK(second.error().message.find(file.string()) != std::string::npos);
        CHECK(second.error().message.find("in use") != std::string::npos);
    }
    // Changes are in the journal beside the file (the snapshot comes with compaction); 0600 both.
    auto journal = file;
    journal += ".journal";
    struct stat info {};
    REQUIRE(::stat(journal.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    if (::stat(file.c_str(), &info) == 0) CHECK((info.st_mode & 0777) == 0600);

    auto store = local_store(io, file);
    CHECK(ok(net::test::run(io, store->revision())) == revision);
    auto listed = ok(net::test::run(io, store->list("")));
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].key == "routes/b");
    CHECK(listed[0].value == "two");
    CHECK(ok(net::test::run(io, store->try_acquire("locks/x", "other", 5s))));  // the old holder is gone

    // A watch from an old revision starts over: the store keeps no history.
    Recorder recorder;
    recorder.watch(*store, "routes/", 1);
    CHECK(run_until(io, [&] { return recorder.seen.size() >= 2; }));
    CHECK(recorder.seen == std::vector<std::string>{"reset", "put routes/b=two"});
}

TEST_CASE("cluster store (local): the journal is compacted into the snapshot; a torn last line is dropped") {
    net::test::TempDir dir;
    auto file = dir.path / "state.json";
    auto journal = file;
    journal += ".journal";
    asio::io_context io;
    std::string big(1024 * 1024, 'x');
    {
        auto store = local_store(io, file);
        for (int i = 0; i < 6; ++i) ok(net::test::run(io, store->put("big/" + std::to_string(i % 2), big)));
        ok(net::test::run(io, store->put("small", "1")));
    }
    // Over 4 MiB of journal: the snapshot was written and the journal started over.
    CHECK(std::filesystem::file_size(file) > 2 * big.size());
    CHECK(std::filesystem::file_size(journal) < 2 * big.size());
    // A crash in the middle of an append leaves a line without its newline: never acknowledged.
    {
        std::ofstream torn(journal, std::ios::app);
        torn << R"({"key":"dG9ybg==","value":"eA==","revi)";
    }
    {
        auto store = local_store(io, file);
        auto listed = ok(net::test::run(io, store->list("")));
        REQUIRE(listed.size() == 3);
        CHECK(listed[2].key == "small");
        ok(net::test::run(io, store->put("after", "2")));  // appends after a clean line, not the torn one
    }
    auto store = local_store(io, file);
    auto after = ok(net::test::run(io, store->get("after")));
    REQUIRE(after);
    CHECK(after->value == "2");
    CHECK_FALSE(ok(net::test::run(io, store->get("torn"))));
}

TEST_CASE("cluster store (local): a corrupt journal is refused with a message naming it") {
    net::test::TempDir dir;
    auto file = dir.path / "state.json";
    auto journal = file;
    journal += ".journal";
    {
        std::ofstream out(journal);
        out << "not json\n";
    }
    asio::io_context io;
    auto store = app::make_local_store(io.get_executor(), file);
    REQUIRE_FALSE(store.ok());
    CHECK(store.error().message.find(journal.string()) != std::string::npos);
}

TEST_CASE("cluster store (local): a corrupt file is refused with a message naming it") {
    net::test::TempDir dir;
    asio::io_context io;
    auto file = dir.path / "store.json";
    const char* bad[] = {
        "{not json",
        R"({"format":"other","version":1,"revision":"1","entries":[]})",
        R"({"format":"dstack-cluster-store","version":1,"revision":"1","entries":[{"key":"YQ==","value":"!!","revision":"1"}]})",
        R"({"format":"dstack-cluster-store","version":1,"revision":"1","entries":[{"key":"YQ==","value":"","revision":"5"}]})",
        R"({"format":"dstack-cluster-store","version":1,"revision":"2","entries":[{"key":"YQ==","revision":"1"},{"key":"YQ==","revision":"2"}]})",
    };
    for (const char* text : bad) {
        CAPTURE(text);
        ok(write_file_atomic(file, as_bytes(std::string_view(text))));
        auto made = app::make_local_store(io.get_executor(), file);
        REQUIRE_FALSE(made.ok());
        CHECK(made.error().message.find(file.string() + " is corrupt") != std::string::npos);
    }
}

// --- etcd ---------------------------------------------------------------------------------------

TEST_CASE("cluster store (etcd): put, get, list, remove, size limits, key prefix") {
    EtcdServer etcd;
    asio::io_context io;
    auto store = etcd_store(io, {etcd.url()});
    CHECK(store->description() == "etcd:" + etcd.url());
    check_key_value(io, *store);
    // Keys live under the prefix: another prefix sees none of them.
    app::EtcdOptions options;
    options.endpoints = {etcd.url()};
    options.key_prefix = "/someone-else/";
    auto other = ok(app::make_etcd_store(io.get_executor(), options));
    CHECK(ok(net::test::run(io, other->list(""))).empty());
    auto raw = etcd.post("kv/range", R"({"key":"L2RzdGFjay1nYXRld2F5L290aGVy"})");  // "/dstack-gateway/other"
    CHECK(raw.body.find("\"value\":\"eA==\"") != std::string::npos);
}

TEST_CASE("cluster store (etcd): a watch sees puts and deletes in order, and nothing after stop") {
    EtcdServer etcd;
    asio::io_context io;
    auto store = etcd_store(io, {etcd.url()});
    check_watch_order(io, *store);
}

TEST_CASE("cluster store (etcd): locks are exclusive between two stores") {
    EtcdServer etcd;
    asio::io_context io;
    auto a = etcd_store(io, {etcd.url()});
    auto b = etcd_store(io, {etcd.url()});
    check_lock_exclusivity(io, *a, *b);
}

TEST_CASE("cluster store (etcd): a held lock is kept alive, and expires once its holder vanishes") {
    EtcdServer etcd;
    asio::io_context io;
    auto a = etcd_store(io, {etcd.url()});
    auto b = etcd_store(io, {etcd.url()});
    CHECK(ok(net::test::run(io, a->try_acquire("locks/acme", "node-a", 2s))));
    run_for(io, 3500ms);  // past the ttl: only the keep-alive holds it
    CHECK_FALSE(ok(net::test::run(io, b->try_acquire("locks/acme", "node-b", 2s))));
    a.reset();  // vanishes without releasing
    CHECK_FALSE(ok(net::test::run(io, b->try_acquire("locks/acme", "node-b", 2s))));
    auto vanished = std::chrono::steady_clock::now();
    bool acquired = false;
    while (!acquired && std::chrono::steady_clock::now() - vanished < 6s) {
        run_for(io, 250ms);
        acquired = ok(net::test::run(io, b->try_acquire("locks/acme", "node-b", 2s)));
    }
    CHECK(acquired);
    auto held = ok(net::test::run(io, b->get("locks/acme")));
    REQUIRE(held.has_value());
    CHECK(held->value == "node-b");
}

TEST_CASE("cluster store (etcd): a watch survives an etcd restart and catches up") {
    EtcdServer etcd;
    asio::io_context io;
    // A slow retry, so that the changes below are made while the watch is disconnected.
    auto watcher = etcd_store(io, {etcd.url()}, 1500ms);
    auto writer = etcd_store(io, {etcd.url()});
    Recorder recorder;
    recorder.watch(*watcher, "w/", ok(net::test::run(io, writer->revision())));
    ok(net::test::run(io, writer->put("w/1", "before")));
    REQUIRE(run_until(io, [&] { return recorder.seen.size() == 1; }));

    etcd.restart();  // SIGKILL, then the same data directory again
    ok(net::test::run(io, writer->put("w/2", "during")));
    ok(net::test::run(io, writer->remove("w/1")));
    ok(net::test::run(io, writer->put("w/3", "after")));
    std::vector<std::string> expected = {"put w/1=before", "put w/2=during", "del w/1", "put w/3=after"};
    CHECK(run_until(io, [&] { return recorder.seen.size() >= expected.size(); }, 8s));
    ok(net::test::run(io, writer->put("w/4", "live")));
    expected.push_back("put w/4=live");
    CHECK(run_until(io, [&] { return recorder.seen.size() >= expected.size(); }));
    run_for(io, 200ms);
    CHECK(recorder.seen == expected);
}

TEST_CASE("cluster store (etcd): a watch from a compacted revision resets and reloads the prefix") {
    EtcdServer etcd;
    asio::io_context io;
    auto store = etcd_store(io, {etcd.url()});
    auto start = ok(net::test::run(io, store->revision()));
    ok(net::test::run(io, store->put("c/a", "1")));
    ok(net::test::run(io, store->put("c/b", "1")));
    ok(net::test::run(io, store->remove("c/a")));
    ok(net::test::run(io, store->put("c/b", "2")));
    ok(net::test::run(io, store->put("elsewhere", "x")));
    auto now = ok(net::test::run(io, store->revision()));
    auto compacted = etcd.post("kv/compaction", fmt::format(R"({{"revision":"{}","physical":true}})", now));
    REQUIRE(compacted.status == 200);

    Recorder recorder;
    recorder.watch(*store, "c/", start);
    REQUIRE(run_until(io, [&] { return recorder.seen.size() >= 2; }));
    ok(net::test::run(io, store->put("c/c", "live")));
    CHECK(run_until(io, [&] { return recorder.seen.size() >= 3; }));
    run_for(io, 200ms);
    CHECK(recorder.seen == std::vector<std::string>{"reset", "put c/b=2", "put c/c=live"});
}

TEST_CASE("cluster store (etcd): the next endpoint on connection failure; errors name every endpoint") {
    EtcdServer etcd;
    asio::io_context io;
    std::string dead = fmt::format("http://127.0.0.1:{}", free_port());
    auto store = etcd_store(io, {dead, etcd.url()});
    ok(net::test::run(io, store->put("k", "v")));
    CHECK(ok(net::test::run(io, store->get("k")))->value == "v");
    Recorder recorder;
    recorder.watch(*store, "k", ok(net::test::run(io, store->revision())));
    ok(net::test::run(io, store->put("k", "w")));
    CHECK(run_until(io, [&] { return recorder.seen.size() == 1; }));

    std::string dead2 = fmt::format("http://127.0.0.1:{}", free_port());
    auto unreachable = etcd_store(io, {dead, dead2});
    auto failed = net::test::run(io, unreachable->get("k"));
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.error().message.find(dead) != std::string::npos);
    CHECK(failed.error().message.find(dead2) != std::string::npos);

    CHECK_FALSE(app::make_etcd_store(io.get_executor(), app::EtcdOptions()).ok());
    app::EtcdOptions https;
    https.endpoints = {"https://127.0.0.1:2379"};
    auto no_ca = app::make_etcd_store(io.get_executor(), https);
    REQUIRE_FALSE(no_ca.ok());
    CHECK(no_ca.error().message.find("CA") != std::string::npos);
}
