#!/usr/bin/env python3
"""Integration test of `dstack verify serve`: the real server (our binary) and a real client (curl).

usage: python3 tests/integration/test_verify_serve.py BUILD_DIR

Checks GET /health, POST /verify on the real TDX quote, on a simulated dstack CVM (with and without
--skip-os-image), on upstream's dstack fixtures, the request errors upstream answers with
is_valid false, the body limit (413, and the server keeps serving), two concurrent requests, and
that every server stops cleanly on SIGTERM. Vectors from $DSTACK_VECTORS (harness.py). Python 3
standard library plus the curl binary.
"""

import hashlib
import json
import os
import threading

import harness  # next to this file

TDX_NOW = "1752919234"
OS_IMAGE_REASON = ("OS image hash verification failed: not implemented by this verifier "
                   "(start it with --skip-os-image to accept evidence without it)")
DETAIL_KEYS = ["quote_verified", "event_log_verified", "os_image_hash_verified", "acpi_tables_verified",
               "os_image_is_dev", "os_image_version", "tee_variant", "report_data", "tcb_status", "advisory_ids",
               "key_provider", "app_info"]
APP_INFO_KEYS = ["app_id", "compose_hash", "instance_id", "device_id", "mr_system", "mr_aggregated", "os_image_hash",
                 "key_provider_info", "init_script_hashes"]
BOOT_INFO_KEYS = ["teeVariant", "mrAggregated", "osImageHash", "mrSystem", "appId", "composeHash", "instanceId",
                  "deviceId", "keyProviderInfo", "tcbStatus", "advisoryIds"]

h = None  # the Harness, set by main()


def vec(name):
    return h.vector(name)


def serve(args, name):
    """One `dstack verify serve` on a free port of 127.0.0.1 (a context manager)."""
    return h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0"] + args,
                    ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name=f"verify serve ({name})")


def dstack(args):
    r = h.run([h.dstack] + args)
    h.expect(r.rc == 0, str(r))


def curl(url, body_file=None, method=None):
    """Returns (HTTP status, body text); status 0 when curl failed."""
    headers = ["Content-Type: application/json"] if body_file is not None else []
    return h.curl(url, data_file=body_file, method=method, headers=headers, timeout=60)


class Client:
    def __init__(self, server, tmp):
        self.server = server
        self.tmp = tmp
        self.count = 0

    def post_raw(self, data):
        self.count += 1
        path = os.path.join(self.tmp, f"body-{threading.get_ident()}-{self.count}.json")
        with open(path, "wb") as f:
            f.write(data)
        return curl(self.server.url + "/verify", path)

    def verify(self, request):
        """POST /verify; returns the decoded response, or None (printing why) when not a 200 JSON."""
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        status, text = self.post_raw(body)
        if status != 200:
            print(f"     HTTP {status}: {text[:500]}")
            return None
        try:
            return json.loads(text)
        except ValueError:
            print(f"     not JSON: {text[:500]}")
            return None


def shape_ok(response):
    return (response is not None and list(response)[:3] == ["is_valid", "reason", "details"]
            and all(k in response["details"] for k in DETAIL_KEYS))


def v1_digest(name, payload):
    return hashlib.sha384((0x08000001).to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()


def read_hex(path):
    with open(path, "rb") as f:
        return f.read().hex()


def real_quote_cases(tmp):
    with serve(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"],
               "real collateral") as server:
        client = Client(server, tmp)
        status, text = curl(server.url + "/health")
        h.check("GET /health", status == 200 and json.loads(text or "null") == {"status": "ok", "service": "dstack-verifier"},
                (status, text))
        status, _ = curl(server.url + "/nowhere")
        h.check("unknown path: 404", status == 404, status)
        status, _ = curl(server.url + "/verify")
        h.check("GET /verify: 404 (only POST is routed)", status == 404, status)

        tdx = {"quote": read_hex(vec("dcap-qvl/tdx_quote")), "event_log": "[]"}
        r = client.verify(tdx)
        h.check("real TDX quote: the response has upstream's shape", shape_ok(r), r)
        d = r["details"] if r else {}
        h.check("real TDX quote: quote_verified, UpToDate, no advisories, tee_variant dstack-tdx",
                d.get("quote_verified") is True and d.get("tcb_status") == "UpToDate" and d.get("advisory_ids") == []
                and d.get("tee_variant") == "dstack-tdx" and len(d.get("report_data") or "") == 128, d)
        h.check("real TDX quote with an empty event log: event log not verified, so not valid",
                r and r["is_valid"] is False and d.get("event_log_verified") is False
                and r["reason"].startswith("Event log verification failed:") and "boot_info" not in d, r)
        h.check("real TDX quote: nothing unmeasured is reported as passed",
                d.get("os_image_hash_verified") is False and d.get("acpi_tables_verified") is False
                and d.get("os_image_is_dev") is None and d.get("os_image_version") is None, d)

        with open(vec("dstack/verifier/tdx-lite-attestation.json"), "rb") as f:
            r = client.verify(f.read())
        d = r["details"] if r else {}
        h.check("dstack V0 attestation: quote not verified against another platform's collateral",
                r and r["is_valid"] is False and d.get("quote_verified") is False
                and r["reason"].startswith("Quote verification failed:") and d.get("tcb_status") is None, r)
        info = d.get("app_info") or {}
        h.check("dstack V0 attestation: event log verified, app_info from the runtime events",
                d.get("event_log_verified") is True and list(info) == APP_INFO_KEYS
                and info.get("mr_system", "").startswith("118f754a") and info.get("mr_aggregated", "").startswith("c758fa62"),
                d)
        h.check("dstack V0 attestation: key_provider parsed from the key-provider event",
                (d.get("key_provider") or {}).get("name") == "kms" and len((d.get("key_provider") or {}).get("id", "")) > 0, d)

        with open(vec("dstack/verifier/tdx-lite-getquote.json")) as f:
            getquote = json.load(f)
        r = client.verify({k: getquote[k] for k in ("quote", "event_log", "vm_config")})
        d = r["details"] if r else {}
        h.check("dstack GetQuote response: quote not verified, event log verified, same identity as the attestation",
                r and r["is_valid"] is False and d.get("quote_verified") is False and d.get("event_log_verified") is True
                and (d.get("app_info") or {}).get("mr_aggregated", "").startswith("c758fa62"), r)
        r = client.verify({"attestation": json.load(open(vec("dstack/verifier/tdx-lite-attestation.json")))["attestation"],
                           "quote": "zz", "event_log": "not json"})
        h.check("attestation given: top-level quote and event_log ignored",
                r and r["details"]["event_log_verified"] is True, r)

        r = client.verify({"event_log": "[]"})
        h.check("missing quote: 'Quote is required'", r and r["is_valid"] is False and "Quote is required" in (r["reason"] or ""), r)
        r = client.verify({"quote": tdx["quote"]})
        h.check("missing event_log: 'Event log is required'",
                r and r["is_valid"] is False and "Event log is required" in (r["reason"] or ""), r)
        r = client.verify(b'{"quote": "0400", ')
        h.check("bad JSON: is_valid false, Internal error",
                shape_ok(r) and r["is_valid"] is False and r["reason"].startswith("Internal error:")
                and r["details"]["quote_verified"] is False, r)
        r = client.verify({"quote": "xyz", "event_log": "[]"})
        h.check("bad quote hex: Internal error", r and r["is_valid"] is False and r["reason"].startswith("Internal error:"), r)
        r = client.verify({"quote": tdx["quote"], "event_log": "[{"})
        h.check("bad event log JSON: Internal error",
                r and r["is_valid"] is False and r["reason"].startswith("Internal error:"), r)
        r = client.verify({"attestation": "00ff"})
        h.check("bad attestation: Internal error", r and r["is_valid"] is False and r["reason"].startswith("Internal error:"), r)
        r = client.verify(b"[" * 100000)
        h.check("deeply nested JSON: Internal error, server alive",
                r and r["reason"].startswith("Internal error:") and server.alive(), r)

        status, _ = client.post_raw(b'{"quote":"' + b"00" * (3 * 1024 * 1024 // 2) + b'"}')
        h.check("3 MB body: 413", status == 413, status)
        status, text = curl(server.url + "/health")
        h.check("after the 413 the server keeps serving", status == 200 and server.alive(), (status, text))

        out = [None, None]

        def worker(i):
            out[i] = client.verify(tdx)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.check("two concurrent requests both verified",
                all(o and o["details"]["quote_verified"] is True and o["details"]["tcb_status"] == "UpToDate" for o in out), out)


def sim_cases(tmp):
    pki = os.path.join(tmp, "pki")
    dstack(["verify", "sim", "init", pki])
    collateral = os.path.join(tmp, "sim-collateral.json")
    dstack(["verify", "sim", "collateral", pki, "-o", collateral])
    root = os.path.join(pki, "root.pem")

    with open(vec("dstack/simulator/app-compose.json"), "rb") as f:
        compose_hash = hashlib.sha256(f.read()).digest()
    app_id = bytes(range(20))
    events = [("system-preparing", b""), ("app-id", app_id), ("compose-hash", compose_hash),
              ("instance-id", b"\x11" * 20), ("boot-mr-done", b""), ("os-image-hash", b"\x22" * 32),
              ("key-provider", b'{"name":"kms","id":"abcd"}'), ("system-ready", b"")]
    rtmr3 = bytes(48)
    for name, payload in events:
        rtmr3 = hashlib.sha384(rtmr3 + v1_digest(name, payload)).digest()
    quote_path = os.path.join(tmp, "sim-cvm.bin")
    dstack(["verify", "sim", "quote", pki, "-o", quote_path, "--rtmr3", rtmr3.hex(), "--report-data", "ab" * 64])
    log = [{"imr": 3, "event_type": 134217729, "digest": v1_digest(n, p).hex(), "event": n, "event_payload": p.hex()}
           for n, p in events]
    request = {"quote": read_hex(quote_path), "event_log": json.dumps(log)}

    common = ["--collateral", collateral, "--trust-root", root, "--accept-simulated"]
    with serve(common + ["--skip-os-image", "--threads", "3"], "simulator, --skip-os-image") as server:
        r = Client(server, tmp).verify(request)
        d = r["details"] if r else {}
        h.check("sim CVM with --skip-os-image: valid", r and r["is_valid"] is True and r["reason"] is None, r)
        h.check("sim CVM: quote and event log verified, OS image still reported unverified",
                d.get("quote_verified") is True and d.get("event_log_verified") is True
                and d.get("os_image_hash_verified") is False and d.get("tcb_status") == "UpToDate"
                and d.get("report_data") == "ab" * 64, d)
        info = d.get("app_info") or {}
        h.check("sim CVM: app_info from the events",
                info.get("compose_hash") == compose_hash.hex() and info.get("app_id") == app_id.hex()
                and info.get("instance_id") == "11" * 20 and info.get("os_image_hash") == "22" * 32
                and len(info.get("mr_system", "")) == 64 and info.get("init_script_hashes") == [], info)
        h.check("sim CVM: key_provider", d.get("key_provider") == {"name": "kms", "id": "abcd"}, d.get("key_provider"))
        boot = d.get("boot_info") or {}
        h.check("sim CVM: boot_info with camelCase keys",
                list(boot) == BOOT_INFO_KEYS and boot["composeHash"] == compose_hash.hex()
                and boot["teeVariant"] == "dstack-tdx" and boot["tcbStatus"] == "UpToDate" and boot["advisoryIds"] == []
                and boot["mrAggregated"] == info.get("mr_aggregated"), boot)

        tampered = dict(request)
        tampered["event_log"] = json.dumps(log[:2] + [dict(log[2], event_payload="00" * 32)] + log[3:])
        r = Client(server, tmp).verify(tampered)
        h.check("sim CVM: a changed event payload: Event log verification failed (RTMR3 mismatch)",
                r and r["is_valid"] is False and r["reason"].startswith("Event log verification failed: RTMR3 mismatch")
                and r["details"]["event_log_verified"] is False and r["details"]["app_info"] is None, r)

    with serve(common, "simulator") as server:
        r = Client(server, tmp).verify(request)
        h.check("sim CVM without --skip-os-image: invalid with the OS image reason, no boot_info",
                r and r["is_valid"] is False and r["reason"] == OS_IMAGE_REASON
                and r["details"]["quote_verified"] is True and "boot_info" not in r["details"], r)

    outdated = os.path.join(tmp, "sim-outdated.json")
    dstack(["verify", "sim", "collateral", pki, "-o", outdated, "--status", "OutOfDate"])
    for extra, valid in [([], False), (["--allow-status", "OutOfDate"], True)]:
        label = "with --allow-status OutOfDate: valid" if valid else "strict policy: invalid"
        with serve(["--collateral", outdated, "--trust-root", root, "--accept-simulated", "--skip-os-image"] + extra,
                   f"OutOfDate, {label.split(':')[0]}") as server:
            r = Client(server, tmp).verify(request)
            h.check(f"sim CVM, OutOfDate TCB, {label}",
                    r and r["is_valid"] is valid and r["details"]["tcb_status"] == "OutOfDate"
                    and (valid or "OutOfDate is not accepted" in r["reason"]), r)


def pccs_cases(tmp):
    # Without --collateral each request fetches from the PCCS; one that cannot be reached makes the
    # quote unverifiable, and the response says which URL failed.
    dead = "http://127.0.0.1:9"
    with serve(["--pccs", dead, "--cache-dir", os.path.join(tmp, "empty-cache"), "--now", TDX_NOW, "--skip-os-image"],
               "unreachable PCCS") as server:
        r = Client(server, tmp).verify({"quote": read_hex(vec("dcap-qvl/tdx_quote")), "event_log": "[]"})
        h.check("PCCS unreachable: Quote verification failed, naming the PCCS",
                shape_ok(r) and r["is_valid"] is False and r["reason"].startswith("Quote verification failed:")
                and "127.0.0.1:9" in r["reason"] and r["details"]["quote_verified"] is False, r)


def usage_cases():
    r = h.run([h.dstack, "verify", "serve"], timeout=30)
    h.check("no --listen: exit 2", r.rc == 2 and "--listen" in r.err, r)
    r = h.run([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--threads", "0"], timeout=30)
    h.check("--threads 0: exit 2", r.rc == 2, r)
    r = h.run([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--collateral", "/nonexistent"], timeout=30)
    h.check("unreadable --collateral: exit 2 before listening", r.rc == 2 and not r.out, r)


def main(harness_):
    global h
    h = harness_
    with h.group("usage"):
        usage_cases()
    with h.group("real quote"):
        real_quote_cases(h.tmpdir("real"))
    with h.group("simulator"):
        sim_cases(h.tmpdir("sim"))
    with h.group("PCCS"):
        pccs_cases(h.tmpdir("pccs"))


if __name__ == "__main__":
    harness.main(main, needs=["curl"])
