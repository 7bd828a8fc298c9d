#!/usr/bin/env python3
"""Integration test of collateral fetching in `dstack verify serve --pccs`: the real binary against a
PCCS-shaped server on 127.0.0.1 (pccs_fixture.py) that counts what it is asked.

usage: python3 tests/integration/test_collateral_fetch.py BUILD_DIR

Floods the verifier with concurrent POST /verify requests whose collateral fetch fails (the PCCS
answers 404, or serves a TCB info whose signature does not verify) and checks that the PCCS sees a
bounded number of requests (identical fetches are shared, failures remembered), that each request
still gets the exact error, and that the --cache-dir stays empty after failed verifications and
within its bounds after a good one. Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard
library only; loopback only.
"""

import json
import os
import threading

import harness  # next to this file
from pccs_fixture import DOCUMENTS, TCB_PATH, Pccs  # next to this file

TDX_NOW = "1752919234"
FLOOD = 20
CACHE_MAX_ENTRIES = 256  # CollateralCacheLimits' defaults
CACHE_MAX_BYTES = 32 * 1024 * 1024

h = None  # the Harness, set by main()


def serve(pccs, cache_dir, name):
    """One `dstack verify serve` on a free port of 127.0.0.1 that fetches from pccs (a context manager)."""
    return h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--pccs", pccs.url,
                     "--cache-dir", cache_dir, "--now", TDX_NOW, "--skip-os-image", "--threads", "4"],
                    ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name=f"verify serve --pccs ({name})")


def post_verify(server, body, out, index):
    """POST /verify; out[index] is the decoded answer, or {"error": why} when it is not a 200 JSON."""
    try:
        response = harness.http_request(server.address, "POST", "/verify", body=body,
                                        headers={"Content-Type": "application/json"}, timeout=60)
        out[index] = response.json() if response.status == 200 else {"error": str(response)}
    except Exception as e:  # noqa: BLE001  (reported as the check's detail)
        out[index] = {"error": repr(e)}


def flood(server, body, count):
    responses = [None] * count
    threads = [threading.Thread(target=post_verify, args=(server, body, responses, i)) for i in range(count)]
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


def failing_fetch(pccs, server, cache_dir, body):
    pccs.reset(fail_path=TCB_PATH, delay=0.2)
    responses = flood(server, body, FLOOD)
    reasons = [r.get("reason") or "" for r in responses if r]
    expected = "/tdx/certification/v4/tcb?fmspc=B0C06F000000: HTTP 404"
    h.check(f"PCCS answers 404: every one of {FLOOD} concurrent requests is invalid with the fetch error",
            len(reasons) == FLOOD and all(r.startswith("Quote verification failed: Failed to fetch ") and r.endswith(expected)
                                          for r in reasons), responses[:2])
    seen = pccs.count
    h.check(f"PCCS answers 404: {FLOOD} concurrent requests made at most 2 outbound requests (pckcrl, tcb)", seen <= 2,
            pccs.requests)
    responses = flood(server, body, FLOOD)
    h.check("PCCS answers 404: the failure is remembered, 20 more requests ask the PCCS nothing",
            pccs.count == seen and all((r or {}).get("is_valid") is False for r in responses), pccs.requests)
    h.check("PCCS answers 404: the cache directory holds nothing", cache_files(cache_dir) == [], cache_files(cache_dir))


def unverified_collateral(pccs, server, cache_dir, body):
    pccs.reset(tamper_tcb_signature=True, delay=0.2)
    responses = flood(server, body, FLOOD)
    reasons = [r.get("reason") or "" for r in responses if r]
    h.check(f"TCB info signature broken: every one of {FLOOD} requests fails DCAP with the exact error",
            len(reasons) == FLOOD and all("Signature is invalid for tcb_info in quote_collateral" in r for r in reasons)
            and all(r["details"]["quote_verified"] is False for r in responses), responses[:2])
    h.check(f"TCB info signature broken: {FLOOD} concurrent requests fetched the collateral once (4 requests)",
            pccs.count <= 4, pccs.requests)
    h.check("TCB info signature broken: nothing is cached after the failed verification",
            cache_files(cache_dir) == [], cache_files(cache_dir))


def good_collateral(pccs, server, cache_dir, body):
    pccs.reset(delay=0.2)
    responses = flood(server, body, FLOOD)
    h.check(f"good collateral: all {FLOOD} concurrent requests verify the quote",
            all((r or {}).get("details", {}).get("quote_verified") is True for r in responses), responses[:2])
    h.check(f"good collateral: {FLOOD} concurrent requests fetched it once (4 requests)", pccs.count <= 4,
            pccs.requests)
    # The bounds above are upper bounds; this one shows the fixture does see the verifier's fetches.
    h.check("good collateral: the PCCS was asked for each of its 4 documents",
            {r.split("?")[0] for r in pccs.requests} == set(DOCUMENTS), pccs.requests)
    files = cache_files(cache_dir)
    ok, size = within_bounds(cache_dir)
    h.check("good collateral: one cache entry, within the cache's bounds",
            ok and len(files) == 1 and files[0].endswith(".json") and len(files[0]) == 69, (files, size))
    before = pccs.count
    responses = flood(server, body, 5)
    h.check("good collateral: later requests are answered from the cache",
            pccs.count == before and all((r or {}).get("details", {}).get("quote_verified") is True for r in responses),
            pccs.requests)


def main(harness_):
    global h
    h = harness_
    with h.group("collateral fetching"):  # a missing vector makes this a SKIP, never a pass
        quote_path = h.vector("dcap-qvl/tdx_quote")
        with open(h.vector("dcap-qvl/tdx_quote_collateral.json")) as f:
            collateral = json.load(f)
        with open(quote_path, "rb") as f:
            body = json.dumps({"quote": f.read().hex(), "event_log": "[]"}).encode()
        with Pccs(collateral) as pccs:
            for name, scenario in [("failing-fetch", failing_fetch), ("unverified", unverified_collateral),
                                   ("good", good_collateral)]:
                with h.group(name):  # one scenario that breaks does not hide the others' results
                    cache_dir = os.path.join(h.tmpdir("caches"), name)
                    with serve(pccs, cache_dir, name) as server:
                        scenario(pccs, server, cache_dir, body)
                        h.check(f"{name}: the server is still serving", server.alive(), server.log_tail())


if __name__ == "__main__":
    harness.main(main)
