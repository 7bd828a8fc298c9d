// The asio-free pieces of the ACME client and the Cloudflare provider; the flows themselves run
// against pebble in tests/integration/test_gateway_acme.py.
#include <doctest/doctest.h>

#include "dstack/app/acme-client.hpp"
#include "dstack/app/cloudflare-dns.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/crypto/p256.hpp"

using namespace dstack;

TEST_CASE("acme: the JWK thumbprint of RFC 7515 A.3's P-256 key (RFC 7638 member order)") {
    // d from RFC 7515 Appendix A.3; the expected value is python3 hashlib's SHA-256 over the
    // canonical JWK with that appendix's x and y (y as openssl derives it from d), so our point
    // derivation is checked too.
    auto d = base64url_decode("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    REQUIRE(d);
    auto key = crypto::P256PrivateKey::from_scalar(*d);
    REQUIRE(key);
    auto thumbprint = app::acme_jwk_thumbprint(key->pkcs8_pem());
    REQUIRE(thumbprint);
    CHECK(*thumbprint == "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
    CHECK(!app::acme_jwk_thumbprint("not a key"));
}

TEST_CASE("acme: the DNS-01 record name and value") {
    CHECK(app::acme_dns01_record_name("example.com") == "_acme-challenge.example.com");
    CHECK(app::acme_dns01_record_name("*.example.com") == "_acme-challenge.example.com");
    CHECK(app::acme_dns01_txt_value("token.thumb") == "lCdftpJCXapaZHkBGIZbcubeKW8RmA0jSG_aZN01zbU");
}

TEST_CASE("acme: Retry-After as delay-seconds only") {
    CHECK(app::acme_retry_after_seconds("3") == 3);
    CHECK(app::acme_retry_after_seconds(" 120 ") == 120);
    CHECK(app::acme_retry_after_seconds("0") == 0);
    CHECK(app::acme_retry_after_seconds("") == -1);
    CHECK(app::acme_retry_after_seconds("-1") == -1);
    CHECK(app::acme_retry_after_seconds("1.5") == -1);
    CHECK(app::acme_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == -1);
    CHECK(app::acme_retry_after_seconds("99999999999999999999") == -1);
}

TEST_CASE("cloudflare: zone matching is by whole labels, the domain normalised first") {
    CHECK(app::cloudflare_normalize_domain("*.Example.COM.") == "example.com");
    CHECK(app::cloudflare_zone_matches("example.com", "example.com"));
    CHECK(app::cloudflare_zone_matches("_acme-challenge.a.example.com", "example.com"));
    CHECK_FALSE(app::cloudflare_zone_matches("badexample.com", "example.com"));
    CHECK_FALSE(app::cloudflare_zone_matches("example.com", "a.example.com"));
    CHECK_FALSE(app::cloudflare_zone_matches("example.com", ""));
}

TEST_CASE("cloudflare: the CAA tag is the content's second token") {
    CHECK(app::cloudflare_caa_tag("0 issue \"letsencrypt.org\"") == "issue");
    CHECK(app::cloudflare_caa_tag("0  IssueWild \";\"") == "issuewild");
    CHECK(app::cloudflare_caa_tag("0 iodef \"mailto:x@example.com\"") == "iodef");
    CHECK(app::cloudflare_caa_tag("0") == "");
}
