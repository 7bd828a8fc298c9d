// DNS look-ups through c-ares. Each look-up runs its own channel on a short-lived thread and
// hands the answer back to the caller's executor: c-ares's sockets come and go inside the
// library, which makes a poll loop far simpler and safer than mirroring them into asio, and
// look-ups are rare (KMS, webhooks, ACME), so a thread each costs nothing that matters.
#include "dstack/net/dns.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>
#include <strings.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include <asio/async_result.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/net/dns-message.hpp"

namespace dstack::net::dns {

namespace {

using Clock = std::chrono::steady_clock;
using Answer = Result<std::vector<std::string>>;

struct Query {
    std::string name;
    int type = 0;  // ns_t_a, ns_t_aaaa or ns_t_txt
    Options options;
};

const char* type_name(int type) {
    switch (type) {
        case ns_t_a: return "A";
        case ns_t_aaaa: return "AAAA";
        default: return "TXT";
    }
}

struct Outcome {
    bool done = false;
    int status = ARES_SUCCESS;
    std::vector<std::string> values;
    int type = 0;
};

void on_reply(void* arg, int status, int /*timeouts*/, unsigned char* reply, int length) {
    auto* outcome = static_cast<Outcome*>(arg);
    outcome->done = true;
    outcome->status = status;
    if (status != ARES_SUCCESS) return;
    auto parsed = parse_reply(outcome->type, reply, length);
    outcome->status = parsed.status;
    outcome->values = std::move(parsed.values);
}

// ares_library_init sets up process-wide state (and is not thread-safe): once per process.
void init_library_once() {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// Blocking; runs on the look-up's own thread.
Answer run_query(const Query& query) {
    std::string what = fmt::format("DNS {} look-up of '{}'", type_name(query.type), query.name);
    auto question = build_question(query.name, query.type);
    if (!question) return make_error("{}: not a valid domain name: {}", what, question.error().message);
    // RFC 7686: .onion names must never reach ordinary DNS.
    std::string_view lowered = query.name;
    if (lowered.ends_with('.')) lowered.remove_suffix(1);
    if (lowered.size() >= 6 && strcasecmp(std::string(lowered.substr(lowered.size() - 6)).c_str(), ".onion") == 0)
        return make_error("{}: .onion names are not resolved through DNS", what);
    auto timeout = std::max(query.options.timeout, std::chrono::milliseconds(1));
    int tries = std::max(query.options.tries, 1);

    init_library_once();
    ares_options settings{};
    settings.timeout = static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30));
    settings.tries = tries;
    ares_channel channel = nullptr;
    int status = ares_init_options(&channel, &settings, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (status != ARES_SUCCESS) return make_error("{}: resolver setup: {}", what, ares_strerror(status));
    struct ChannelGuard {
        ares_channel channel;
        ~ChannelGuard() { ares_destroy(channel); }
    } guard{channel};

    if (!query.options.servers.empty()) {
        std::string csv;
        for (auto& server : query.options.servers) {
            if (!csv.empty()) csv += ',';
            csv += server;
        }
        status = ares_set_servers_ports_csv(channel, csv.c_str());
        if (status != ARES_SUCCESS)
            return make_error("{}: DNS servers '{}' are not ip[:port] entries: {}", what, csv, ares_strerror(status));
    }

    Outcome outcome;
    outcome.type = query.type;
    ares_send(channel, question->data(), static_cast<int>(question->size()), on_reply, &outcome);

    // c-ares's retries back off (the second try waits twice as long); our bound is the total
    // the options promise, enforced here so a silent server cannot stretch it.
    auto deadline = Clock::now() + timeout * tries;
    bool gave_up = false;
    while (!outcome.done) {
        ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        nfds_t count = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            short events = 0;
            if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
            if (events != 0) fds[count++] = pollfd{sockets[i], events, 0};
        }
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            gave_up = true;
            ares_cancel(channel);
            break;
        }
        timeval limit{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
        timeval wait{};
        ares_timeout(channel, &limit, &wait);
        int wait_ms = static_cast<int>(wait.tv_sec * 1000 + (wait.tv_usec + 999) / 1000);
        int ready = ::poll(fds, count, wait_ms);
        if (ready < 0 && errno != EINTR) {
            gave_up = true;
            ares_cancel(channel);
            break;
        }
        if (ready <= 0) {
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // lets c-ares handle its timeouts
            continue;
        }
        for (nfds_t i = 0; i < count; ++i) {
            if (fds[i].revents == 0) continue;
            bool readable = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
            bool writable = fds[i].revents & (POLLOUT | POLLERR);
            ares_process_fd(channel, readable ? fds[i].fd : ARES_SOCKET_BAD, writable ? fds[i].fd : ARES_SOCKET_BAD);
        }
    }

    if (gave_up || outcome.status == ARES_ETIMEOUT)
        return make_error("{}: no answer within {} ms ({} tries)", what, (timeout * tries).count(), tries);
    switch (outcome.status) {
        case ARES_SUCCESS: return std::move(outcome.values);
        case ARES_ENODATA: return std::vector<std::string>{};
        case ARES_ENOTFOUND: return make_error("{}: no such domain (NXDOMAIN)", what);
        default: return make_error("{}: {}", what, ares_strerror(outcome.status));
    }
}

// Takes the query's parts rather than a Query: g++ 12 miscompiles braced aggregate temporaries
// passed by value to coroutines (the copy in the frame keeps pointers into the temporary).
asio::awaitable<Answer> lookup(asio::any_io_executor executor, std::string name, int type, Options options) {
    Query query;
    query.name = std::move(name);
    query.type = type;
    query.options = std::move(options);
    auto initiate = [executor, query = std::move(query)](auto completion) mutable {
        struct Pending {
            decltype(completion) handler;
            asio::executor_work_guard<asio::any_io_executor> work;  // keeps the caller's io_context running
            Query query;
            void deliver(Answer answer) {
                auto target = asio::get_associated_executor(handler, work.get_executor());
                // The guard travels with the handler: once the handler may have run, the caller's
                // io_context may be gone, so this thread must not touch it again.
                asio::post(target, [handler = std::move(handler), answer = std::move(answer),
                                    work = std::move(work)]() mutable { handler(std::move(answer)); });
            }
        };
        auto pending = std::make_shared<Pending>(
            Pending{std::move(completion), asio::make_work_guard(executor), std::move(query)});
        try {
            std::thread([pending] { pending->deliver(run_query(pending->query)); }).detach();
        } catch (const std::system_error& e) {
            pending->deliver(make_error("DNS look-up of '{}': cannot start a thread: {}", pending->query.name, e.what()));
        }
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Answer)>(std::move(initiate),
                                                                                          asio::use_awaitable);
}

}  // namespace

}  // namespace dstack::net::dns

// c-ares 1.18 defines this helper in the same object as ares_getnameinfo, and ares_init needs
// it indirectly; linking that object statically drags in glibc's getservbyport_r (NSS), which
// cannot work in a static binary and makes every link warn. Defining it here, with the same
// meaning, keeps that object out. We never ask c-ares to build queries, so it is not even called.
extern "C" int ares__is_onion_domain(const char* name) {
    std::string_view text = name ? name : "";
    if (text.ends_with('.')) text.remove_suffix(1);
    return text.size() >= 6 && strcasecmp(std::string(text.substr(text.size() - 6)).c_str(), ".onion") == 0;
}

namespace dstack::net::dns {

asio::awaitable<Result<std::vector<std::string>>> lookup_a(asio::any_io_executor executor, std::string name, Options options) {
    co_return co_await lookup(executor, std::move(name), ns_t_a, std::move(options));
}

asio::awaitable<Result<std::vector<std::string>>> lookup_aaaa(asio::any_io_executor executor, std::string name, Options options) {
    co_return co_await lookup(executor, std::move(name), ns_t_aaaa, std::move(options));
}

asio::awaitable<Result<std::vector<std::string>>> lookup_txt(asio::any_io_executor executor, std::string name, Options options) {
    co_return co_await lookup(executor, std::move(name), ns_t_txt, std::move(options));
}

}  // namespace dstack::net::dns
