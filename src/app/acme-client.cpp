// The ACME flow of spec/gateway.md §9.3 over RFC 8555. What upstream (instant-acme) leaves open is
// bounded here: every response's size, every wait (Retry-After capped, one deadline for the whole
// call), the badNonce retries; and every URL the server hands out must stay on the directory's
// origin, so a hostile or confused server cannot point our signed requests elsewhere.
#include "dstack/app/acme-client.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/base/base64.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/log.hpp"
#include "dstack/base/printable.hpp"
#include "dstack/base/version.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/csr.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/net/ca-bundle.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t quoted_bytes = 512;             // of a server's text, in our errors
constexpr milliseconds request_timeout{30'000};       // one HTTP exchange
constexpr milliseconds min_poll_delay{200};
constexpr std::size_t max_authorizations = 100;       // Let's Encrypt allows 100 names per order
constexpr std::size_t max_challenges = 16;
constexpr std::size_t max_nonce_bytes = 512;
constexpr std::string_view bad_nonce = "urn:ietf:params:acme:error:badNonce";

std::string server_text(std::string_view text) {
    return printable_text(text.substr(0, std::min(text.size(), quoted_bytes)));
}

struct Directory {
    std::string new_nonce, new_account, new_order;
};

// One call's state: the key, the nonce to use next, the deadline. Held in the calling coroutine's
// frame and passed by reference to the steps it awaits.
struct Session {
    explicit Session(crypto::P256PrivateKey k) : key(std::move(k)) {}
    asio::any_io_executor executor;
    AcmeOptions options;
    crypto::P256PrivateKey key;
    std::string kid;  // the account URL; empty: the request carries the JWK (newAccount)
    std::string nonce;
    std::string origin;  // the directory's "https://host:port"
    Directory directory;
    Clock::time_point deadline;
};

std::string origin_of(const net::http::Url& url) { return url.endpoint.description(); }

Result<void> check_origin(const Session& s, std::string_view url, std::string_view what) {
    auto parsed = net::http::parse_url(url);
    if (!parsed) return make_error("{} '{}': {}", what, server_text(url), parsed.error().message);
    if (origin_of(*parsed) != s.origin) {
        return make_error("{} '{}' is not on the directory's origin {}", what, server_text(url), s.origin);
    }
    return {};
}

Result<net::http::ClientOptions> client_options(const Session& s) {
    auto left = std::chrono::duration_cast<milliseconds>(s.deadline - Clock::now());
    if (left <= milliseconds(0)) return make_error("timed out after {} ms", s.options.timeout.count());
    net::http::ClientOptions options;
    options.total_timeout = std::min(left, request_timeout);
    options.connect_timeout = std::min(options.total_timeout, milliseconds(10'000));
    options.max_response_bytes = acme_max_response_bytes;
    options.user_agent = fmt::format("dstack-certbot/{}", version());
    net::tls::ClientConfig tls;
    if (s.options.ca_pem.empty()) {
        const auto& bundle = net::system_ca_bundle();
        if (!bundle) return bundle.error();
        tls.ca_pem = *bundle;
    } else {
        tls.ca_pem = s.options.ca_pem;
    }
    options.tls_config = std::move(tls);
    return options;
}

// RFC 7807 problem document, as one line: "urn:...:malformed: detail [subproblems]".
std::string describe_problem(int status, std::string_view body) {
    std::string out = fmt::format("HTTP {}", status);
    json::ReadLimits limits{acme_max_response_bytes, 8};
    auto doc = json::read_json(body, limits);
    if (doc && doc->root().is_object()) {
        auto object = *doc->root().object();
        if (auto type = object.optional("type"); type && type->is_string()) out += ": " + server_text(*type->string());
        if (auto detail = object.optional("detail"); detail && detail->is_string()) out += ": " + server_text(*detail->string());
        if (auto subs = object.optional("subproblems"); subs && subs->is_array()) {
            auto list = subs->array(1000);
            for (std::size_t i = 0; list && i < list->size() && i < 4; ++i) {
                auto sub = (*list)[i].object();
                if (!sub) continue;
                auto detail = sub->optional("detail");
                if (detail && detail->is_string()) out += " [" + server_text(*detail->string()) + "]";
            }
        }
        return out;
    }
    if (!body.empty()) out += ": " + server_text(body);
    return out;
}

std::optional<std::string> problem_type(std::string_view body) {
    json::ReadLimits limits{acme_max_response_bytes, 8};
    auto doc = json::read_json(body, limits);
    if (!doc || !doc->root().is_object()) return std::nullopt;
    auto type = doc->root().object()->optional("type");
    if (!type || !type->is_string()) return std::nullopt;
    return *type->string();
}

bool valid_nonce(std::string_view nonce) {
    if (nonce.empty() || nonce.size() > max_nonce_bytes) return false;
    return std::all_of(nonce.begin(), nonce.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

void take_nonce(Session& s, const net::http::Response& response) {
    auto nonce = response.headers.get("Replay-Nonce");
    if (nonce && valid_nonce(*nonce)) s.nonce = std::string(*nonce);
}

// {"crv":"P-256","kty":"EC","x":"...","y":"..."}: member order as RFC 7638 needs for the thumbprint.
std::string jwk_json(const crypto::P256PrivateKey& key) {
    const Bytes& point = key.public_key();
    ByteView x(point.data() + 1, 32), y(point.data() + 33, 32);
    return fmt::format(R"({{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}})", base64url_encode(x), base64url_encode(y));
}

// Flattened JWS JSON serialization (RFC 8555 §6.2); an empty payload is POST-as-GET.
Result<std::string> jws(const Session& s, std::string_view url, std::string_view payload) {
    std::string header = R"({"alg":"ES256",)";
    if (s.kid.empty()) {
        header += R"("jwk":)" + jwk_json(s.key);
    } else {
        header += R"("kid":)";
        append_json_string_literal(header, s.kid);
    }
    header += R"(,"nonce":)";
    append_json_string_literal(header, s.nonce);
    header += R"(,"url":)";
    append_json_string_literal(header, url);
    header += "}";
    std::string protected64 = base64url_encode(as_bytes(header));
    std::string payload64 = base64url_encode(as_bytes(payload));
    std::string signing_input = protected64 + "." + payload64;
    DSTACK_TRY(auto signature, s.key.sign(as_bytes(signing_input)));
    return fmt::format(R"({{"protected":"{}","payload":"{}","signature":"{}"}})", protected64, payload64,
                       base64url_encode(signature));
}

asio::awaitable<Result<net::http::Response>> plain_request(Session& s, std::string method, std::string url) {
    auto options = client_options(s);
    if (!options) co_return std::move(options).take_error();
    auto parsed = net::http::parse_url(url);
    if (!parsed) co_return std::move(parsed).take_error();
    net::http::Request request;
    request.method = std::move(method);
    request.target = parsed->target;
    co_return co_await net::http::send_request(s.executor, parsed->endpoint, std::move(request), std::move(*options));
}

asio::awaitable<Result<void>> fetch_nonce(Session& s) {
    auto response = co_await plain_request(s, "HEAD", s.directory.new_nonce);
    if (!response) co_return std::move(response).take_error().context("ACME newNonce");
    if (response->status != 200 && response->status != 204) {
        co_return make_error("ACME newNonce: {}", describe_problem(response->status, response->body));
    }
    take_nonce(s, *response);
    if (s.nonce.empty()) co_return make_error("ACME newNonce: no valid Replay-Nonce header in the response");
    co_return Result<void>{};
}

// A signed POST; `payload` empty means POST-as-GET. Non-2xx answers are errors naming `step`;
// badNonce is retried with the nonce that came with the refusal.
asio::awaitable<Result<net::http::Response>> signed_post(Session& s, std::string step, std::string url,
                                                         std::string payload, std::string accept) {
    for (int attempt = 0;; ++attempt) {
        if (s.nonce.empty()) {
            auto fetched = co_await fetch_nonce(s);
            if (!fetched) co_return std::move(fetched).take_error().context(step);
        }
        auto body = jws(s, url, payload);
        if (!body) co_return std::move(body).take_error().context(step);
        s.nonce.clear();  // a nonce is good for one request, whatever happens to it
        auto options = client_options(s);
        if (!options) co_return std::move(options).take_error().context(step);
        auto parsed = net::http::parse_url(url);
        if (!parsed) co_return std::move(parsed).take_error().context(step);
        net::http::Request request;
        request.method = "POST";
        request.target = parsed->target;
        request.headers.set("Content-Type", "application/jose+json");
        if (!accept.empty()) request.headers.set("Accept", accept);
        request.body = std::move(*body);
        auto response = co_await net::http::send_request(s.executor, parsed->endpoint, std::move(request), std::move(*options));
        if (!response) co_return std::move(response).take_error().context(step);
        take_nonce(s, *response);
        if (response->status >= 200 && response->status < 300) co_return std::move(*response);
        if (response->status == 400 && attempt < acme_bad_nonce_retries && problem_type(response->body) == bad_nonce) {
            log::debug("{}: badNonce, retrying with the fresh nonce", step);
            continue;
        }
        co_return make_error("{}: {}", step, describe_problem(response->status, response->body));
    }
}

Result<json::Document> read_body(std::string_view step, const net::http::Response& response) {
    json::ReadLimits limits{acme_max_response_bytes, 16};
    auto doc = json::read_json(response.body, limits);
    if (!doc) return doc.error().context(fmt::format("{}: the response", step));
    if (!doc->root().is_object()) return make_error("{}: the response is not a JSON object", step);
    return doc;
}

asio::awaitable<Result<void>> load_directory(Session& s, std::string directory_url) {
    auto parsed = net::http::parse_url(directory_url);
    if (!parsed) co_return parsed.error().context("ACME directory URL");
    s.origin = origin_of(*parsed);
    auto response = co_await plain_request(s, "GET", directory_url);
    if (!response) co_return std::move(response).take_error().context("ACME directory");
    if (response->status != 200) co_return make_error("ACME directory: {}", describe_problem(response->status, response->body));
    auto doc = read_body("ACME directory", *response);
    if (!doc) co_return std::move(doc).take_error();
    auto object = *doc->root().object();
    for (auto [key, field] : {std::pair{"newNonce", &s.directory.new_nonce}, std::pair{"newAccount", &s.directory.new_account},
                              std::pair{"newOrder", &s.directory.new_order}}) {
        auto value = object.string(key);
        if (!value) co_return value.error().context("ACME directory");
        if (auto same = check_origin(s, *value, key); !same) co_return same.error().context("ACME directory");
        *field = std::move(*value);
    }
    co_return Result<void>{};
}

asio::awaitable<Result<void>> sleep_for(milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
    co_return Result<void>{};
}

// Waits before the next poll: Retry-After when the server sent one (capped), else the poll interval;
// never past the deadline.
asio::awaitable<Result<void>> wait_to_poll(Session& s, const net::http::Response& response, std::string step,
                                           std::string last_status) {
    milliseconds delay = s.options.poll_interval;
    if (auto header = response.headers.get("Retry-After")) {
        auto seconds = acme_retry_after_seconds(*header);
        if (seconds >= 0) delay = std::min(acme_max_retry_after, milliseconds(std::min<std::int64_t>(seconds, 86'400) * 1000));
    }
    delay = std::max(delay, min_poll_delay);
    if (Clock::now() + delay > s.deadline) {
        co_return make_error("{}: timed out after {} ms with the status still '{}'", step, s.options.timeout.count(),
                             server_text(last_status));
    }
    co_return co_await sleep_for(delay);
}

struct Challenge {
    std::string type, url, token, status, error;
};

struct Authorization {
    std::string identifier, status;
    std::vector<Challenge> challenges;
};

std::string problem_text(const json::Object& object, std::string_view key) {
    auto error = object.optional(key);
    if (!error || !error->is_object()) return "";
    auto problem = error->object();
    std::string out;
    if (auto type = problem->optional("type"); type && type->is_string()) out = server_text(*type->string());
    if (auto detail = problem->optional("detail"); detail && detail->is_string()) {
        out += (out.empty() ? "" : ": ") + server_text(*detail->string());
    }
    return out;
}

Result<Authorization> parse_authorization(const json::Object& object) {
    Authorization out;
    DSTACK_TRY(auto status, object.string("status"));
    out.status = std::move(status);
    DSTACK_TRY(auto identifier, object.object("identifier"));
    DSTACK_TRY(auto value, identifier.string("value"));
    out.identifier = std::move(value);
    DSTACK_TRY(auto challenges, object.array("challenges", max_challenges));
    for (std::size_t i = 0; i < challenges.size(); ++i) {
        DSTACK_TRY(auto entry, challenges[i].object());
        Challenge challenge;
        DSTACK_TRY(auto type, entry.string("type"));
        DSTACK_TRY(auto url, entry.string("url"));
        challenge.type = std::move(type);
        challenge.url = std::move(url);
        if (auto token = entry.optional("token"); token && token->is_string()) challenge.token = *token->string();
        if (auto status = entry.optional("status"); status && status->is_string()) challenge.status = *status->string();
        challenge.error = problem_text(entry, "error");
        out.challenges.push_back(std::move(challenge));
    }
    return out;
}

struct Order {
    std::string status, finalize, certificate, error;
    std::vector<std::string> authorizations;
};

Result<Order> parse_order(const json::Object& object) {
    Order out;
    DSTACK_TRY(auto status, object.string("status"));
    out.status = std::move(status);
    DSTACK_TRY(auto finalize, object.string("finalize"));
    out.finalize = std::move(finalize);
    if (auto certificate = object.optional("certificate"); certificate && certificate->is_string()) {
        out.certificate = *certificate->string();
    }
    DSTACK_TRY(auto authorizations, object.array("authorizations", max_authorizations));
    for (std::size_t i = 0; i < authorizations.size(); ++i) {
        DSTACK_TRY(auto url, authorizations[i].string());
        out.authorizations.push_back(std::move(url));
    }
    out.error = problem_text(object, "error");
    return out;
}

asio::awaitable<Result<Authorization>> get_authorization(Session& s, std::string url) {
    auto response = co_await signed_post(s, "ACME authorization", url, "", "");
    if (!response) co_return std::move(response).take_error();
    auto doc = read_body("ACME authorization", *response);
    if (!doc) co_return std::move(doc).take_error();
    auto parsed = parse_authorization(*doc->root().object());
    if (!parsed) co_return parsed.error().context("ACME authorization");
    co_return std::move(*parsed);
}

asio::awaitable<Result<std::pair<Order, net::http::Response>>> get_order(Session& s, std::string step, std::string url) {
    auto response = co_await signed_post(s, step, url, "", "");
    if (!response) co_return std::move(response).take_error();
    auto doc = read_body(step, *response);
    if (!doc) co_return std::move(doc).take_error();
    auto order = parse_order(*doc->root().object());
    if (!order) co_return order.error().context(step);
    co_return std::pair{std::move(*order), std::move(*response)};
}

std::string order_payload(const std::vector<std::string>& names) {
    std::string out = R"({"identifiers":[)";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) out += ",";
        out += R"({"type":"dns","value":)";
        append_json_string_literal(out, names[i]);
        out += "}";
    }
    return out + "]}";
}

// What was published, so that it is removed whatever happens.
struct Published {
    std::vector<std::pair<std::string, std::string>> dns;  // name, value
    std::vector<std::string> http;                          // tokens
};

struct PendingChallenge {
    std::string authorization_url, challenge_url, identifier;
};

asio::awaitable<Result<void>> answer_challenges(Session& s, const Order& order, AcmeChallengeType type,
                                                const AcmeChallengeHooks& hooks, Published& published) {
    std::string_view wanted = type == AcmeChallengeType::dns01 ? "dns-01" : "http-01";
    std::string thumbprint = base64url_encode(crypto::sha256(as_bytes(jwk_json(s.key))));
    std::vector<PendingChallenge> pending;
    for (const auto& url : order.authorizations) {
        if (auto same = check_origin(s, url, "authorization URL"); !same) co_return same.error().context("ACME newOrder");
        auto authorization = co_await get_authorization(s, url);
        if (!authorization) co_return std::move(authorization).take_error();
        if (authorization->status == "valid") continue;  // authorized earlier, still current
        if (authorization->status != "pending") {
            co_return make_error("ACME authorization for {}: status '{}'", server_text(authorization->identifier),
                                 server_text(authorization->status));
        }
        auto challenge = std::find_if(authorization->challenges.begin(), authorization->challenges.end(),
                                      [&](const Challenge& c) { return c.type == wanted; });
        if (challenge == authorization->challenges.end()) {
            co_return make_error("ACME authorization for {}: the server offers no {} challenge",
                                 server_text(authorization->identifier), wanted);
        }
        if (auto same = check_origin(s, challenge->url, "challenge URL"); !same) co_return same.error().context("ACME authorization");
        // RFC 8555 §8.1: base64url token characters only (it goes into a URL path and a TXT value).
        if (challenge->token.empty() || challenge->token.size() > 256 || !valid_nonce(challenge->token)) {
            co_return make_error("ACME authorization for {}: the challenge token is not base64url",
                                 server_text(authorization->identifier));
        }
        std::string key_authorization = challenge->token + "." + thumbprint;
        if (type == AcmeChallengeType::dns01) {
            if (!hooks.publish_dns_txt) co_return make_error("ACME dns-01: no DNS publisher configured");
            std::string name = acme_dns01_record_name(authorization->identifier);
            std::string value = acme_dns01_txt_value(key_authorization);
            published.dns.emplace_back(name, value);
            auto done = co_await hooks.publish_dns_txt(name, value);
            if (!done) co_return std::move(done).take_error().context(fmt::format("ACME dns-01: publishing TXT at {}", name));
        } else {
            if (!hooks.publish_http01) co_return make_error("ACME http-01: no HTTP-01 server configured");
            published.http.push_back(challenge->token);
            hooks.publish_http01(challenge->token, key_authorization);
        }
        pending.push_back({url, challenge->url, authorization->identifier});
    }
    if (type == AcmeChallengeType::dns01 && !pending.empty() && s.options.dns_propagation_wait.count() > 0) {
        if (Clock::now() + s.options.dns_propagation_wait > s.deadline) co_return make_error("ACME dns-01: timed out waiting for DNS propagation");
        co_await sleep_for(s.options.dns_propagation_wait);
    }
    for (const auto& challenge : pending) {
        auto response = co_await signed_post(s, "ACME challenge", challenge.challenge_url, "{}", "");
        if (!response) co_return std::move(response).take_error();
    }
    for (const auto& challenge : pending) {
        std::string step = fmt::format("ACME authorization for {}", server_text(challenge.identifier));
        for (;;) {
            auto response = co_await signed_post(s, step, challenge.authorization_url, "", "");
            if (!response) co_return std::move(response).take_error();
            auto doc = read_body(step, *response);
            if (!doc) co_return std::move(doc).take_error();
            auto authorization = parse_authorization(*doc->root().object());
            if (!authorization) co_return authorization.error().context(step);
            if (authorization->status == "valid") break;
            if (authorization->status != "pending") {
                std::string why;
                for (const auto& c : authorization->challenges) {
                    if (c.type == wanted && !c.error.empty()) why = ": " + c.error;
                }
                co_return make_error("{}: {}{}", step, server_text(authorization->status), why);
            }
            auto waited = co_await wait_to_poll(s, *response, step, authorization->status);
            if (!waited) co_return std::move(waited).take_error();
        }
    }
    co_return Result<void>{};
}

// Polls the order until its status is one of `until`; "invalid" (or anything unexpected) is an error.
asio::awaitable<Result<Order>> poll_order(Session& s, std::string step, std::string url, Order order,
                                          std::vector<std::string> until, std::vector<std::string> waiting) {
    for (;;) {
        if (std::find(until.begin(), until.end(), order.status) != until.end()) co_return order;
        if (std::find(waiting.begin(), waiting.end(), order.status) == waiting.end()) {
            co_return make_error("{}: order status '{}'{}", step, server_text(order.status), order.error.empty() ? "" : ": " + order.error);
        }
        auto fetched = co_await get_order(s, step, url);
        if (!fetched) co_return std::move(fetched).take_error();
        if (std::find(until.begin(), until.end(), fetched->first.status) != until.end()) co_return std::move(fetched->first);
        auto waited = co_await wait_to_poll(s, fetched->second, step, fetched->first.status);
        if (!waited) co_return std::move(waited).take_error();
        order = std::move(fetched->first);
    }
}

Result<IssuedCertificate> check_chain(const std::vector<std::string>& names, const crypto::P256PrivateKey& key,
                                      const std::string& chain_pem) {
    DSTACK_TRY(auto chain, crypto::Certificate::chain_from_pem(chain_pem));
    if (chain.empty()) return make_error("no certificate in the response");
    const auto& leaf = chain.front();
    auto leaf_key = leaf.p256_public_key();
    if (!leaf_key || *leaf_key != key.public_key()) return make_error("the leaf certificate is not for the key we sent");
    auto sans = leaf.subject_alt_names();
    for (const auto& name : names) {
        bool found = std::any_of(sans.begin(), sans.end(), [&](const std::string& san) { return net::http::iequals(san, name); });
        if (!found) return make_error("the leaf certificate does not name {}", server_text(name));
    }
    IssuedCertificate out;
    out.chain_pem = chain_pem;
    out.key_pem = key.pkcs8_pem();
    out.not_before = leaf.not_before();
    out.not_after = leaf.not_after();
    return out;
}

asio::awaitable<Result<IssuedCertificate>> run_order(Session& s, std::vector<std::string> names, AcmeChallengeType type,
                                                     const AcmeChallengeHooks& hooks, Published& published) {
    auto created = co_await signed_post(s, "ACME newOrder", s.directory.new_order, order_payload(names), "");
    if (!created) co_return std::move(created).take_error();
    auto location = created->headers.get("Location");
    if (!location) co_return make_error("ACME newOrder: no Location header in the response");
    std::string order_url(*location);
    if (auto same = check_origin(s, order_url, "order URL"); !same) co_return same.error().context("ACME newOrder");
    auto doc = read_body("ACME newOrder", *created);
    if (!doc) co_return std::move(doc).take_error();
    auto order = parse_order(*doc->root().object());
    if (!order) co_return order.error().context("ACME newOrder");
    if (auto same = check_origin(s, order->finalize, "finalize URL"); !same) co_return same.error().context("ACME newOrder");

    if (order->status == "pending") {
        auto answered = co_await answer_challenges(s, *order, type, hooks, published);
        if (!answered) co_return std::move(answered).take_error();
    }
    // Named vectors, not braced lists in the call: g++ 12 cannot put those in a coroutine frame.
    std::vector<std::string> ready_states{"ready", "valid"}, pending_states{"pending"};
    std::vector<std::string> valid_states{"valid"}, processing_states{"processing", "ready"};
    auto ready = co_await poll_order(s, "ACME order", order_url, std::move(*order), ready_states, pending_states);
    if (!ready) co_return std::move(ready).take_error();

    auto generated = crypto::P256PrivateKey::generate();
    if (!generated) co_return std::move(generated).take_error().context("ACME finalize: the certificate key");
    const crypto::P256PrivateKey& cert_key = *generated;
    crypto::CsrSpec spec;
    spec.subject.common_name = names.front();  // mbedTLS cannot parse a CSR with an empty subject
    spec.subject_alt_names = names;
    auto csr = crypto::write_csr(spec, cert_key);
    if (!csr) co_return csr.error().context("ACME finalize: the CSR");
    Order final_order = std::move(*ready);
    if (final_order.status == "ready") {
        std::string payload = fmt::format(R"({{"csr":"{}"}})", base64url_encode(*csr));
        auto finalized = co_await signed_post(s, "ACME finalize", final_order.finalize, payload, "");
        if (!finalized) co_return std::move(finalized).take_error();
        auto body = read_body("ACME finalize", *finalized);
        if (!body) co_return std::move(body).take_error();
        auto after = parse_order(*body->root().object());
        if (!after) co_return after.error().context("ACME finalize");
        auto valid = co_await poll_order(s, "ACME finalize", order_url, std::move(*after), valid_states, processing_states);
        if (!valid) co_return std::move(valid).take_error();
        final_order = std::move(*valid);
    } else {
        co_return make_error("ACME order: already valid before we finalized it: refusing a certificate for a key we did not send");
    }
    if (final_order.certificate.empty()) co_return make_error("ACME order: valid, but no certificate URL");
    if (auto same = check_origin(s, final_order.certificate, "certificate URL"); !same) co_return same.error().context("ACME order");
    auto downloaded = co_await signed_post(s, "ACME certificate download", final_order.certificate, "",
                                           "application/pem-certificate-chain");
    if (!downloaded) co_return std::move(downloaded).take_error();
    auto issued = check_chain(names, cert_key, downloaded->body);
    if (!issued) co_return issued.error().context("ACME certificate download");
    co_return std::move(*issued);
}

asio::awaitable<void> remove_published(const AcmeChallengeHooks& hooks, const Published& published) {
    for (const auto& token : published.http) {
        if (hooks.remove_http01) hooks.remove_http01(token);
    }
    for (const auto& [name, value] : published.dns) {
        if (!hooks.remove_dns_txt) continue;
        auto removed = co_await hooks.remove_dns_txt(name, value);
        if (!removed) log::warn("ACME dns-01: removing TXT at {}: {}", name, removed.error().message);
    }
}

}  // namespace

Result<std::string> acme_jwk_thumbprint(std::string_view key_pem) {
    DSTACK_TRY(auto key, crypto::P256PrivateKey::from_pem(key_pem));
    return base64url_encode(crypto::sha256(as_bytes(jwk_json(key))));
}

std::string acme_dns01_txt_value(std::string_view key_authorization) {
    return base64url_encode(crypto::sha256(as_bytes(key_authorization)));
}

std::string acme_dns01_record_name(std::string_view identifier) {
    if (identifier.substr(0, 2) == "*.") identifier.remove_prefix(2);
    return fmt::format("_acme-challenge.{}", identifier);
}

std::int64_t acme_retry_after_seconds(std::string_view header) {
    while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) header.remove_prefix(1);
    while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) header.remove_suffix(1);
    if (header.empty() || header.size() > 12) return -1;
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), value);
    if (ec != std::errc() || end != header.data() + header.size() || value < 0) return -1;
    return value;
}

asio::awaitable<Result<AcmeAccount>> acme_create_account(asio::any_io_executor ex, std::string directory_url,
                                                          AcmeOptions options) {
    auto key = crypto::P256PrivateKey::generate();
    if (!key) co_return std::move(key).take_error().context("ACME account key");
    Session s(std::move(*key));
    s.executor = ex;
    s.options = std::move(options);
    s.deadline = Clock::now() + s.options.timeout;
    auto loaded = co_await load_directory(s, directory_url);
    if (!loaded) co_return std::move(loaded).take_error();
    auto response = co_await signed_post(s, "ACME newAccount", s.directory.new_account, R"({"termsOfServiceAgreed":true})", "");
    if (!response) co_return std::move(response).take_error();
    auto location = response->headers.get("Location");
    if (!location) co_return make_error("ACME newAccount: no Location header in the response");
    if (auto same = check_origin(s, *location, "account URL"); !same) co_return same.error().context("ACME newAccount");
    AcmeAccount account;
    account.directory_url = std::move(directory_url);
    account.account_url = std::string(*location);
    account.key_pem = s.key.pkcs8_pem();
    co_return account;
}

asio::awaitable<Result<IssuedCertificate>> acme_issue_certificate(asio::any_io_executor ex, AcmeAccount account,
                                                                  std::vector<std::string> names,
                                                                  AcmeChallengeType type, AcmeChallengeHooks hooks,
                                                                  AcmeOptions options) {
    if (names.empty()) co_return make_error("ACME newOrder: no names to certify");
    auto key = crypto::P256PrivateKey::from_pem(account.key_pem);
    if (!key) co_return make_error("ACME account key: not a P-256 private key");  // never quote the key
    if (account.account_url.empty()) co_return make_error("ACME account: no account URL");
    Session s(std::move(*key));
    s.executor = ex;
    s.options = std::move(options);
    s.deadline = Clock::now() + s.options.timeout;
    s.kid = account.account_url;
    auto loaded = co_await load_directory(s, account.directory_url);
    if (!loaded) co_return std::move(loaded).take_error();
    if (auto same = check_origin(s, s.kid, "account URL"); !same) co_return same.error().context("ACME account");
    Published published;
    auto issued = co_await run_order(s, std::move(names), type, hooks, published);
    co_await remove_published(hooks, published);
    co_return issued;
}

}  // namespace dstack::app
