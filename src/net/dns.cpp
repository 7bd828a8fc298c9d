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

// Reads the A or AAAA records of an answer section. ares_parse_a_reply would do this, but in
// c-ares 1.18 it drags in ares_getaddrinfo and with it glibc's NSS service look-ups, which
// cannot work in a static binary (and make the static link warn).
std::vector<std::string> parse_addresses(int type, const unsigned char* reply, int length, int& status) {
    std::vector<std::string> out;
    status = ARES_EBADRESP;
    auto u16 = [&](long at) { return (reply[at] << 8) | reply[at + 1]; };
    if (length < 12) return out;
    int questions = u16(4), answers = u16(6);
    long at = 12;
    auto skip_name = [&]() {
        char* name = nullptr;
        long encoded = 0;
        if (ares_expand_name(reply + at, reply, length, &name, &encoded) != ARES_SUCCESS) return false;
        ares_free_string(name);
        at += encoded;
        return at <= length;
    };
    for (int i = 0; i < questions; ++i) {
        if (!skip_name() || at + 4 > length) return out;
        at += 4;
    }
    const std::size_t size = type == ns_t_a ? 4 : 16;
    for (int i = 0; i < answers; ++i) {
        if (!skip_name() || at + 10 > length) return out;
        int record_type = u16(at), record_class = u16(at + 2), data_length = u16(at + 8);
        at += 10;
        if (at + data_length > length) return out;
        if (record_type == type && record_class == ns_c_in && static_cast<std::size_t>(data_length) == size) {
            char text[INET6_ADDRSTRLEN] = {};
            if (::inet_ntop(type == ns_t_a ? AF_INET : AF_INET6, reply + at, text, sizeof text) != nullptr)
                out.emplace_back(text);
        }
        at += data_length;
    }
    status = ARES_SUCCESS;
    return out;
}

std::vector<std::string> parse_txt(const unsigned char* reply, int length, int& status) {
    std::vector<std::string> out;
    ares_txt_ext* records = nullptr;
    status = ares_parse_txt_reply_ext(reply, length, &records);
    if (status != ARES_SUCCESS) return out;
    // A TXT record is a sequence of <=255-byte strings that together form one value.
    for (auto* chunk = records; chunk != nullptr; chunk = chunk->next) {
        if (chunk->record_start || out.empty()) out.emplace_back();
        out.back().append(reinterpret_cast<const char*>(chunk->txt), chunk->length);
    }
    ares_free_data(records);
    return out;
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
    // ares_send hands over the raw answer; the response code is ours to read (as ares_query would).
    if (length < 12) {
        outcome->status = ARES_EBADRESP;
        return;
    }
    int answers = (reply[6] << 8) | reply[7];
    switch (reply[3] & 0x0f) {
        case 0: outcome->status = answers == 0 ? ARES_ENODATA : ARES_SUCCESS; break;
        case 1: outcome->status = ARES_EFORMERR; break;
        case 2: outcome->status = ARES_ESERVFAIL; break;
        case 3: outcome->status = ARES_ENOTFOUND; break;
        case 4: outcome->status = ARES_ENOTIMP; break;
        case 5: outcome->status = ARES_EREFUSED; break;
        default: outcome->status = ARES_EBADRESP; break;
    }
    if (outcome->status != ARES_SUCCESS) return;
    outcome->values = outcome->type == ns_t_txt ? parse_txt(reply, length, outcome->status)
                                                : parse_addresses(outcome->type, reply, length, outcome->status);
}

// The question ares_query would build. Building it here keeps ares_create_query out of the
// link, which (in c-ares 1.18) pulls in getnameinfo and glibc's NSS service look-ups.
Result<std::vector<unsigned char>> build_question(std::string_view name, int type) {
    std::vector<unsigned char> packet = {0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};  // id set by c-ares; RD; one question
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty()) return make_error("empty name");
    std::size_t encoded = 1;
    while (!name.empty()) {
        auto dot = name.find('.');
        auto label = name.substr(0, dot);
        if (label.empty() || label.size() > 63) return make_error("labels must be 1 to 63 bytes");
        encoded += label.size() + 1;
        packet.push_back(static_cast<unsigned char>(label.size()));
        packet.insert(packet.end(), label.begin(), label.end());
        name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
        if (dot != std::string_view::npos && name.empty()) return make_error("empty label");
    }
    if (encoded > 255) return make_error("name is longer than 255 bytes");
    packet.push_back(0);
    packet.insert(packet.end(), {static_cast<unsigned char>(type >> 8), static_cast<unsigned char>(type & 0xff), 0, ns_c_in});
    return packet;
}

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
