// The gateway's in-memory state: the instance registry (RegisterCvm's rules, selection among an
// app's instances, the top-N cache, expiry; spec/gateway.md §3.9, §4.1, §8), the certificate
// store's layers and wildcard matching (§9.1, §9.7), and the config's durations and port ranges.
#include <doctest/doctest.h>

#include "dstack/base/base64.hpp"
#include "gateway/certificate-store.hpp"
#include "gateway/instance-registry.hpp"
#include "gateway/options.hpp"

using namespace dstack;
using namespace dstack::applets::gateway;

namespace {

std::string wg_key(std::uint8_t fill) { return base64_encode(Bytes(32, fill)); }

InstanceRegistry registry() {
    app::WgNetworkConfig network;  // 10.0.0.1/24, reserved 10.0.0.1/32, clients 10.0.0.0/25
    return InstanceRegistry(network, 1);
}

PortPolicy open_policy() { return PortPolicy{}; }

}  // namespace

TEST_CASE("registry: the first CVMs get 10.0.0.2 and 10.0.0.3; re-registering changes nothing") {
    auto r = registry();
    auto a = r.register_instance("aa", "01", "c1", wg_key(1), open_policy(), 1000);
    REQUIRE(a);
    CHECK(a->record.ip == "10.0.0.2");
    CHECK(a->changed);
    auto b = r.register_instance("aa", "02", "c1", wg_key(2), open_policy(), 1001);
    REQUIRE(b);
    CHECK(b->record.ip == "10.0.0.3");
    auto again = r.register_instance("aa", "01", "c1", wg_key(1), open_policy(), 5000);
    REQUIRE(again);
    CHECK_FALSE(again->changed);
    CHECK(again->record.ip == "10.0.0.2");
    CHECK(again->record.reg_time == 1000);  // liveness comes from handshakes, not re-registration
}

TEST_CASE("registry: RegisterCvm's refusals") {
    auto r = registry();
    REQUIRE(r.register_instance("aa", "01", "c1", wg_key(1), open_policy(), 1));
    auto other_app = r.register_instance("bb", "01", "c1", wg_key(1), open_policy(), 2);
    REQUIRE_FALSE(other_app);
    CHECK(other_app.error().message.find("already registered to a different app") != std::string::npos);
    auto reused_key = r.register_instance("aa", "02", "c1", wg_key(1), open_policy(), 2);
    REQUIRE_FALSE(reused_key);
    CHECK(reused_key.error().message.find("already used by another instance") != std::string::npos);
    CHECK_FALSE(r.register_instance("aa", "03", "c1", "not-a-wireguard-key", open_policy(), 2));
    CHECK_FALSE(r.register_instance("aa", "03", "c1", "AQID", open_policy(), 2));
    CHECK_FALSE(r.register_instance("", "03", "c1", wg_key(3), open_policy(), 2));
    CHECK_FALSE(r.register_instance("aa", "", "c1", wg_key(3), open_policy(), 2));
    CHECK_FALSE(r.register_instance("AA", "03", "c1", wg_key(3), open_policy(), 2));   // ids are lowercase hex
    CHECK_FALSE(r.register_instance("aa", "0x03", "c1", wg_key(3), open_policy(), 2));
    CHECK_FALSE(r.register_instance("aa", std::string(66, 'a'), "c1", wg_key(3), open_policy(), 2));
    CHECK(r.size() == 1);
}

TEST_CASE("registry: a key change bumps reg_time; a compose change drops the reported policy") {
    auto r = registry();
    PortPolicy restricted;
    restricted.restrict_mode = true;
    restricted.ports[443] = true;
    REQUIRE(r.register_instance("aa", "01", "c1", wg_key(1), restricted, 10));
    auto rekeyed = r.register_instance("aa", "01", "c1", wg_key(9), std::nullopt, 20);
    REQUIRE(rekeyed);
    CHECK(rekeyed->changed);
    CHECK(rekeyed->record.reg_time == 20);
    CHECK(rekeyed->record.port_policy == restricted);  // absent: the cached one stays
    auto upgraded = r.register_instance("aa", "01", "c2", wg_key(9), std::nullopt, 30);
    REQUIRE(upgraded);
    CHECK_FALSE(upgraded->record.port_policy);  // unknown until the new compose reports one
    // The operator's override survives the upgrade.
    REQUIRE(r.set_admin_policy("01", open_policy()));
    auto again = r.register_instance("aa", "01", "c3", wg_key(9), std::nullopt, 40);
    REQUIRE(again);
    CHECK(effective_policy(again->record) == std::optional<PortPolicy>(open_policy()));
    CHECK_FALSE(r.set_admin_policy("nope", std::nullopt));
}

TEST_CASE("registry: top-N by latest handshake, cached until an instance is added or removed") {
    auto r = registry();
    for (int i = 0; i < 4; ++i) {
        REQUIRE(r.register_instance("ab", "0" + std::to_string(i), "c", wg_key(static_cast<std::uint8_t>(i + 1)), open_policy(), 1));
    }
    UnixSeconds now = 100000;
    r.set_handshakes({{wg_key(1), now}, {wg_key(2), now - 1}, {wg_key(3), now - 2}, {wg_key(4), now - 3600}}, true);
    auto selected = r.select("ab", 3, now, 1800, 30);
    REQUIRE(selected);
    REQUIRE(selected->backends.size() == 3);
    CHECK(selected->backends[0].instance_id == "00");
    CHECK(selected->backends[1].instance_id == "01");
    CHECK(selected->backends[2].instance_id == "02");
    // Changed handshakes are ignored while the cache is fresh.
    r.set_handshakes({{wg_key(1), 0}, {wg_key(2), 0}, {wg_key(3), now}, {wg_key(4), now}}, true);
    selected = r.select("ab", 3, now + 1, 1800, 30);
    REQUIRE(selected);
    CHECK(selected->backends[0].instance_id == "00");
    // A new instance clears the cache: now only two are healthy.
    REQUIRE(r.register_instance("ab", "04", "c", wg_key(5), open_policy(), 2));
    selected = r.select("ab", 3, now + 2, 1800, 30);
    REQUIRE(selected);
    REQUIRE(selected->backends.size() == 2);
    // An instance id selects exactly that instance, healthy or not.
    selected = r.select("01", 3, now, 1800, 30);
    REQUIRE(selected);
    REQUIRE(selected->backends.size() == 1);
    CHECK(selected->backends[0].instance_id == "01");
    CHECK(selected->app_id == "ab");
    auto unknown = r.select("nope", 3, now, 1800, 30);
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message.find("app not found") != std::string::npos);
}

TEST_CASE("registry: without handshake data every instance is a candidate, in registration order") {
    auto r = registry();
    REQUIRE(r.register_instance("ab", "0b", "c", wg_key(1), open_policy(), 5));
    REQUIRE(r.register_instance("ab", "0a", "c", wg_key(2), open_policy(), 6));
    auto selected = r.select("ab", 3, 10, 1800, 30);
    REQUIRE(selected);
    REQUIRE(selected->backends.size() == 2);
    CHECK(selected->backends[0].instance_id == "0b");
}

TEST_CASE("registry: expiry needs both an old registration and no recent handshake") {
    auto r = registry();
    REQUIRE(r.register_instance("ab", "0d", "c", wg_key(1), open_policy(), 100));
    REQUIRE(r.register_instance("ab", "5e", "c", wg_key(2), open_policy(), 100));
    REQUIRE(r.register_instance("ab", "0e", "c", wg_key(3), open_policy(), 900));
    r.set_handshakes({{wg_key(2), 950}}, true);
    auto expired = r.expired(500);
    REQUIRE(expired.size() == 1);
    CHECK(expired[0] == "0d");
}

TEST_CASE("registry: records round-trip through the store's JSON; a newer record from another node wins") {
    auto r = registry();
    PortPolicy policy;
    policy.restrict_mode = true;
    policy.ports[8080] = false;
    policy.ports[443] = true;
    auto made = r.register_instance("ab", "01", "c1", wg_key(1), policy, 10);
    REQUIRE(made);
    auto text = encode_instance(made->record);
    auto back = decode_instance(text);
    REQUIRE(back);
    CHECK(*back == made->record);
    CHECK_FALSE(decode_instance(R"({"instance_id":"x"})"));
    InstanceRecord bad_id = made->record;
    bad_id.app_id = "<script>";
    CHECK_FALSE(decode_instance(encode_instance(bad_id)));
    // A record from the shared store cannot smuggle lines into the WireGuard device's configuration.
    InstanceRecord hostile = made->record;
    hostile.ip = "10.0.0.2/32\nremove=true";
    CHECK_FALSE(decode_instance(encode_instance(hostile)));
    hostile.ip = "010.0.0.2";
    CHECK_FALSE(decode_instance(encode_instance(hostile)));
    hostile = made->record;
    hostile.public_key = "not-a-key";
    CHECK_FALSE(decode_instance(encode_instance(hostile)));
    CHECK_FALSE(decode_instance(R"({"instance_id":"x","instance_id":"y"})"));
    InstanceRecord older = made->record;
    older.reg_time = 5;
    older.ip = "10.0.0.9";
    CHECK_FALSE(r.apply(older));
    InstanceRecord newer = made->record;
    newer.reg_time = 50;
    newer.node_id = 2;
    CHECK(r.apply(newer));
    CHECK(r.find("01")->node_id == 2);
}

TEST_CASE("certificate store: *.domain matches exactly one more label; the best layer is served") {
    CertificateStore store;
    auto self_signed = make_self_signed_wildcard("Example.COM.", 1'800'000'000);
    REQUIRE(self_signed);
    CHECK(self_signed->domain == "example.com");
    CHECK(self_signed->source == CertificateSource::self_signed);
    store.put(*self_signed);
    CHECK(store.covers("example.com"));
    CHECK(store.for_server_name("app.example.com"));
    CHECK_FALSE(store.for_server_name("example.com"));
    CHECK_FALSE(store.for_server_name("a.b.example.com"));
    CHECK_FALSE(store.for_server_name("app.example.org"));
    // A "real" certificate (here another self-signed one, installed as ACME's) replaces it...
    auto acme = make_self_signed_wildcard("example.com", 1'800'000'000);
    REQUIRE(acme);
    acme->source = CertificateSource::acme;
    store.put(*acme);
    CHECK(store.for_server_name("x.example.com")->chain_pem == acme->pem.chain_pem);
    CHECK(store.served().front().source == CertificateSource::acme);
    // ...and when it goes, the self-signed layer is served again.
    store.remove("example.com", CertificateSource::acme);
    CHECK(store.for_server_name("x.example.com")->chain_pem == self_signed->pem.chain_pem);
    store.remove("example.com", CertificateSource::self_signed);
    CHECK_FALSE(store.covers("example.com"));
}

TEST_CASE("certificate store: a certificate that fails its checks is refused with the reason") {
    auto now = system_now();
    auto made = make_self_signed_wildcard("example.com", now);
    REQUIRE(made);
    auto other = make_self_signed_wildcard("example.com", now);
    REQUIRE(other);
    auto mismatched = check_domain_certificate("example.com", made->pem.chain_pem, other->pem.key_pem,
                                               CertificateSource::static_file, now);
    REQUIRE_FALSE(mismatched);
    CHECK(mismatched.error().message.find("does not match") != std::string::npos);
    auto expired = check_domain_certificate("example.com", made->pem.chain_pem, made->pem.key_pem,
                                            CertificateSource::static_file, now + 200LL * 86400);
    REQUIRE_FALSE(expired);
    CHECK(expired.error().message.find("expired") != std::string::npos);
    auto wrong_name = check_domain_certificate("example.org", made->pem.chain_pem, made->pem.key_pem,
                                               CertificateSource::static_file, now);
    REQUIRE_FALSE(wrong_name);
    CHECK(wrong_name.error().message.find("*.example.org") != std::string::npos);
    CHECK_FALSE(normalize_domain("bad_.-x"));
    CHECK_FALSE(normalize_domain(""));
    CHECK(*normalize_domain(" *.A.example. ") == "a.example");
}

TEST_CASE("gateway options: durations and port ranges as gateway.toml writes them") {
    CHECK(parse_duration("5s")->count() == 5000);
    CHECK(parse_duration("10m")->count() == 600000);
    CHECK(parse_duration("5h")->count() == 18000000);
    CHECK(parse_duration("1h30m")->count() == 5400000);
    CHECK(parse_duration("250ms")->count() == 250);
    CHECK(parse_duration("30")->count() == 30000);
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("5 s"));
    CHECK_FALSE(parse_duration("5w"));
    CHECK(parse_port_range("443")->size() == 1);
    CHECK(parse_port_range("443-445")->size() == 3);
    CHECK_FALSE(parse_port_range("445-443"));
    CHECK_FALSE(parse_port_range("70000"));
    CHECK_FALSE(parse_port_range("1-5000"));
}
