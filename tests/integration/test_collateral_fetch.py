#!/usr/bin/env python3
"""Integration test of collateral fetching in `dstack verify serve --pccs`: the real binary against a
PCCS-shaped server on 127.0.0.1 that counts what it is asked.

usage: python3 tests/integration/test_collateral_fetch.py DSTACK_BINARY

Floods the verifier with concurrent POST /verify requests whose collateral fetch fails (the PCCS
answers 404, or serves a TCB info whose signature does not verify) and checks that the PCCS sees a
bounded number of requests (identical fetches are shared, failures remembered), that each request
still gets the exact error, and that the --cache-dir stays empty after failed verifications and
within its bounds after a good one. Reuses test_verify.py's PCCS and test_verify_serve.py's server
runner. Python 3 standard library only; loopback only.
"""

import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_verify  # noqa: E402  (the PCCS fixture)
import test_verify_serve  # noqa: E402  (the verify serve runner)

VECTORS = test_verify.VECTORS
TDX_NOW = test_verify.TDX_NOW
FLOOD = 20
CACHE_MAX_ENTRIES = 256  # CollateralCacheLimits' defaults
CACHE_MAX_BYTES = 32 * 1024 * 1024

results = {"passed": 0, "failed": 0}


def case(name, condition, detail=""):
    if condition:
        results["passed"] += 1
        print(f"ok   {name}")
    else:
        results["failed"] += 1
        print(f"FAIL {name} {str(detail)[:2000]}")


class CountingPccs(test_verify.PcsFixture):
    """test_verify's PCCS, counting requests under a lock, optionally slow, failing or tampering."""

    lock = threading.Lock()
    count = 0
    fail_path = None
    tamper_tcb_signature = False
    delay = 0.0

    def do_GET(self):
        with CountingPccs.lock:
            CountingPccs.count += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail_path and self.path.startswith(self.fail_path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.tamper_tcb_signature and self.path.startswith("/tdx/certification/v4/tcb"):
            saved = test_verify.PcsFixture.collateral
            tampered = dict(saved)
            signature = bytearray.fromhex(saved["tcb_info_signature"])
            signature[5] ^= 1
            tampered["tcb_info_signature"] = signature.hex()
            self.collateral = tampered  # this handler instance only
        super().do_GET()

    @classmethod
    def reset(cls, fail_path=None, tamper=False, delay=0.0):
        with cls.lock:
            cls.count = 0
        cls.fail_path = fail_path
        cls.tamper_tcb_signature = tamper
        cls.delay = delay


def post_verify(url, body, out, index):
    request = urllib.request.Request(url + "/verify", data=body, headers={"Content-Type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            out[index] = json.loads(response.read())
    except Exception as e:  # noqa: BLE001  (reported as the case's detail)
        out[index] = {"error": repr(e)}


def flood(url, body, count):
    responses = [None] * count
    threads = [threading.Thread(target=post_verify, args=(url, body, responses, i)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return responses


def cache_files(cache_dir):
    if not os.path.isdir(cache_dir):
        return []
    return sorted(os.listdir(cache_dir))


def within_bounds(cache_dir):
    files = cache_files(cache_dir)
    total = sum(os.path.getsize(os.path.join(cache_dir, name)) for name in files)
    return len(files) <= CACHE_MAX_ENTRIES and total <= CACHE_MAX_BYTES, (len(files), total)


def scenario(tmp, pccs_url, name, body, check):
    cache_dir = os.path.join(tmp, "cache-" + name)
    server = test_verify_serve.Server(["--pccs", pccs_url, "--cache-dir", cache_dir, "--now", TDX_NOW,
                                       "--skip-os-image", "--threads", "4"])
    try:
        check(server, cache_dir, body)
        case(f"{name}: the server is still serving", server.alive())
    finally:
        server.stop()


def failing_fetch(server, cache_dir, body):
    CountingPccs.reset(fail_path="/tdx/certification/v4/tcb", delay=0.2)
    responses = flood(server.url, body, FLOOD)
    reasons = [r.get("reason") or "" for r in responses if r]
    expected = "/tdx/certification/v4/tcb?fmspc=B0C06F000000: HTTP 404"
    case(f"PCCS answers 404: every one of {FLOOD} concurrent requests is invalid with the fetch error",
         len(reasons) == FLOOD and all(r.startswith("Quote verification failed: Failed to fetch ") and r.endswith(expected)
                                       for r in reasons), responses[:2])
    seen = CountingPccs.count
    case(f"PCCS answers 404: {FLOOD} concurrent requests made at most 2 outbound requests (pckcrl, tcb)", seen <= 2, seen)
    responses = flood(server.url, body, FLOOD)
    case("PCCS answers 404: the failure is remembered, 20 more requests ask the PCCS nothing",
         CountingPccs.count == seen and all((r or {}).get("is_valid") is False for r in responses), CountingPccs.count)
    case("PCCS answers 404: the cache directory holds nothing", cache_files(cache_dir) == [], cache_files(cache_dir))


def unverified_collateral(server, cache_dir, body):
    CountingPccs.reset(tamper=True, delay=0.2)
    responses = flood(server.url, body, FLOOD)
    reasons = [r.get("reason") or "" for r in responses if r]
    case(f"TCB info signature broken: every one of {FLOOD} requests fails DCAP with the exact error",
         len(reasons) == FLOOD and all("Signature is invalid for tcb_info in quote_collateral" in r for r in reasons)
         and all(r["details"]["quote_verified"] is False for r in responses), responses[:2])
    case(f"TCB info signature broken: {FLOOD} concurrent requests fetched the collateral once (4 requests)",
         CountingPccs.count <= 4, CountingPccs.count)
    case("TCB info signature broken: nothing is cached after the failed verification",
         cache_files(cache_dir) == [], cache_files(cache_dir))


def good_collateral(server, cache_dir, body):
    CountingPccs.reset(delay=0.2)
    responses = flood(server.url, body, FLOOD)
    case(f"good collateral: all {FLOOD} concurrent requests verify the quote",
         all((r or {}).get("details", {}).get("quote_verified") is True for r in responses), responses[:2])
    case(f"good collateral: {FLOOD} concurrent requests fetched it once (4 requests)", CountingPccs.count <= 4,
         CountingPccs.count)
    files = cache_files(cache_dir)
    ok, size = within_bounds(cache_dir)
    case("good collateral: one cache entry, within the cache's bounds",
         ok and len(files) == 1 and files[0].endswith(".json") and len(files[0]) == 69, (files, size))
    before = CountingPccs.count
    responses = flood(server.url, body, 5)
    case("good collateral: later requests are answered from the cache",
         CountingPccs.count == before and all((r or {}).get("details", {}).get("quote_verified") is True for r in responses),
         CountingPccs.count)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    dstack = os.path.abspath(sys.argv[1])
    if os.path.isdir(dstack):  # scripts/test passes the build directory
        dstack = os.path.join(dstack, "dstack")
    test_verify.DSTACK = dstack
    test_verify_serve.DSTACK = dstack
    quote_path = os.path.join(VECTORS, "dcap-qvl/tdx_quote")
    collateral_path = os.path.join(VECTORS, "dcap-qvl/tdx_quote_collateral.json")
    if not (os.path.exists(quote_path) and os.path.exists(collateral_path)):
        print(f"*** vectors missing at {VECTORS}: set DSTACK_VECTORS ***")
        print("test_collateral_fetch: 0 passed, 1 failed")
        return 1
    with open(collateral_path) as f:
        test_verify.PcsFixture.collateral = json.load(f)
    with open(quote_path, "rb") as f:
        body = json.dumps({"quote": f.read().hex(), "event_log": "[]"}).encode()

    pccs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingPccs)
    threading.Thread(target=pccs.serve_forever, daemon=True).start()
    pccs_url = f"http://127.0.0.1:{pccs.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scenario(tmp, pccs_url, "failing-fetch", body, failing_fetch)
            scenario(tmp, pccs_url, "unverified", body, unverified_collateral)
            scenario(tmp, pccs_url, "good", body, good_collateral)
    finally:
        pccs.shutdown()
        pccs.server_close()
    print(f"test_collateral_fetch: {results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
