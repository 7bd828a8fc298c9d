#!/usr/bin/env python3
"""`dstack agent` with real clients: curl over the unix sockets (every example of spec/agent.md
§2-§3), the verifier on every form of evidence it returns, bad input, 200 concurrent clients,
restarts, upstream's fixture, the external listener, GuestApi, systemd socket activation and
start-up errors.

    test_agent.py BUILD_DIR
"""

import base64
import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import harness

RUNTIME_EVENT_TYPE = 0x08000001
RTMR3_OFFSET = 48 + 472          # v4 TD quote: header + TD report up to RT_MR3
REPORT_DATA_OFFSET = 48 + 520


def curl(h, sock, path, body=None, method=None, timeout=30):
    cmd = ["curl", "-sS", "--max-time", str(timeout), "--unix-socket", sock, "-w", "\n%{http_code}"]
    if body is not None:
        cmd += ["-X", method or "POST", "-H", "Content-Type: application/json", "--data-binary", "@-"]
    elif method:
        cmd += ["-X", method]
    cmd.append("http://localhost" + path)
    r = h.run(cmd, stdin=body if body is None or isinstance(body, str) else json.dumps(body), timeout=timeout + 5)
    harness.expect(r.rc == 0, f"curl failed: {r}")
    text, _, status = r.out.rpartition("\n")
    return int(status), text


def call(h, sock, path, body=None):
    status, text = curl(h, sock, path, body if body is not None else {})
    harness.expect(status == 200, f"{path}: HTTP {status}: {text[:400]}")
    return json.loads(text)


def error_of(h, sock, path, body, method=None):
    status, text = curl(h, sock, path, body, method)
    harness.expect(status == 400, f"{path}: expected 400, got {status}: {text[:300]}")
    return json.loads(text)["error"]


def rtmr3_of(quote):
    return quote[RTMR3_OFFSET:RTMR3_OFFSET + 48]


def replay(digests):
    mr = bytes(48)
    for digest in digests:
        mr = hashlib.sha384(mr + digest).digest()
    return mr


def v1_digest(name, payload):
    return hashlib.sha384(struct.pack("<I", RUNTIME_EVENT_TYPE) + b":" + name.encode() + b":" + payload).digest()


def runtime_replay(event_log):
    """RTMR3 from the runtime events, each digest recomputed from name and payload."""
    return replay([v1_digest(e["event"], bytes.fromhex(e["event_payload"]))
                   for e in event_log if e["imr"] == 3 and e["event_type"] == RUNTIME_EVENT_TYPE])


def verify(h, sim_dir, path, *extra):
    return h.run([h.dstack, "verify", "--trust-root", os.path.join(sim_dir, "tee", "root.pem"),
                  "--collateral", os.path.join(sim_dir, "tee", "collateral.json"), *extra, path])


def agent(h, sim_dir, *extra, count=4, name="agent"):
    return h.server([h.dstack, "agent", "--simulator", sim_dir, *extra], count=count, name=name, timeout=30)


def main(h):
    sim = h.tmpdir("sim")
    dsock = os.path.join(sim, "dstack.sock")
    tsock = os.path.join(sim, "tappd.sock")
    esock = os.path.join(sim, "external.sock")
    gsock = os.path.join(sim, "guest.sock")
    first = {}

    with agent(h, sim) as server:
        with h.case("simulator: first start writes the boot files, the TEE state and 0777 sockets"):
            for name in ["app-compose.json", "sys-config.json", "instance_info.json", "appkeys.json",
                         "tee/root.pem", "tee/collateral.json", "tee/runtime_events.log"]:
                harness.expect(os.path.exists(os.path.join(sim, name)), f"{name} missing")
            harness.expect(stat.S_IMODE(os.stat(os.path.join(sim, "appkeys.json")).st_mode) == 0o600,
                           "appkeys.json is not 0600")
            harness.expect(stat.S_IMODE(os.stat(os.path.join(sim, "tee")).st_mode) == 0o700, "tee/ is not 0700")
            for sock in [dsock, tsock, esock, gsock]:
                mode = os.stat(sock).st_mode
                harness.expect(stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o777, f"{sock}: mode {oct(mode)}")

        with h.case("simulator: a second agent on the same directory is refused (its sockets and boot are taken)"):
            r = h.run([h.dstack, "agent", "--simulator", sim], timeout=20)
            harness.expect(r.rc != 0 and "another dstack agent is serving" in r.err, r)
            harness.expect(call(h, dsock, "/Version")["version"], "the first agent stopped serving")

        with h.case("GetKey: POST JSON and GET query agree; 32 bytes and a chain of 2; the algorithm only names the form"):
            a = call(h, dsock, "/GetKey", {"path": "/app", "purpose": "signing"})
            status, text = curl(h, dsock, "/GetKey?path=/app&purpose=signing")
            harness.expect(status == 200 and json.loads(text) == a, f"GET differs: {text}")
            harness.expect(len(bytes.fromhex(a["key"])) == 32 and len(a["signature_chain"]) == 2, a)
            harness.expect(len(bytes.fromhex(a["signature_chain"][0])) == 65, "chain[0] is not a 65-byte signature")
            ed = call(h, dsock, "/GetKey", {"path": "/app", "purpose": "signing", "algorithm": "ed25519"})
            k = call(h, dsock, "/GetKey", {"path": "/app", "purpose": "signing", "algorithm": "k256"})
            harness.expect(ed["key"] == a["key"] == k["key"], "the key bytes depend on the algorithm")
            other = call(h, dsock, "/GetKey", {"path": "/other"})
            harness.expect(other["key"] != a["key"], "another path gives the same key")
            first["key"] = a["key"]

        with h.case("GetKey: hex accepts 0x prefixes; wire shape of a reply (Content-Length, compact JSON)"):
            r = h.run(["curl", "-sS", "-i", "--unix-socket", dsock, "-X", "POST", "-H", "Content-Type: application/json",
                       "-d", '{"path":"/app","purpose":"signing"}', "http://localhost/GetKey"])
            head, _, body = r.out.partition("\r\n\r\n")
            harness.expect("content-length:" in head.lower(), head)
            harness.expect(body.startswith('{"key":"') and ", " not in body, body[:80])

        with h.case("GetQuote: GET ?report_data pads to 64 bytes; the quote carries it; verify says VALID"):
            q = call(h, dsock, "/GetQuote", {"report_data": "0x" + "ab" * 32})
            quote = bytes.fromhex(q["quote"])
            harness.expect(q["report_data"] == "ab" * 32 + "00" * 32, q["report_data"])
            harness.expect(quote[REPORT_DATA_OFFSET:REPORT_DATA_OFFSET + 64] == bytes.fromhex(q["report_data"]), "quote")
            events = json.loads(q["event_log"])
            harness.expect(runtime_replay(events) == rtmr3_of(quote), "runtime events do not replay to RTMR3")
            names = [e["event"] for e in events if e["imr"] == 3]
            harness.expect(names[:3] == ["system-preparing", "app-id", "compose-hash"] and "system-ready" in names, names)
            harness.expect(json.loads(q["vm_config"])["os_image_hash"], q["vm_config"])
            path = os.path.join(h.tmp, "quote.json")
            with open(path, "w") as f:
                json.dump(q, f)
            r = verify(h, sim, path)
            harness.expect(r.rc == 0 and r.out.startswith("VALID"), r)
            harness.expect("ab" * 32 in r.out, "the verdict does not show the report data")
            status, text = curl(h, dsock, "/GetQuote?report_data=" + "cd" * 10)
            harness.expect(status == 200 and json.loads(text)["report_data"].startswith("cd" * 10 + "00"), text[:200])

        with h.case("Attest: a V0 attestation (first byte 00) that verifies with the requested report data"):
            a = call(h, dsock, "/Attest", {"report_data": "11" * 64})
            blob = bytes.fromhex(a["attestation"])
            harness.expect(blob[0] == 0, f"first byte {blob[0]}")
            path = os.path.join(h.tmp, "attestation.bin")
            with open(path, "wb") as f:
                f.write(blob)
            r = verify(h, sim, path)
            harness.expect(r.rc == 0 and "11" * 64 in r.out, r)

        with h.case("GetTlsKey: PKCS#8 key, chain [leaf, app CA] that openssl verifies; a new key per call"):
            t = call(h, dsock, "/GetTlsKey", {"subject": "app.example", "alt_names": ["app.example", "127.0.0.1"],
                                             "usage_server_auth": True, "usage_client_auth": True})
            harness.expect(t["key"].startswith("-----BEGIN PRIVATE KEY-----\n") and t["key"].endswith("\n"), t["key"][:40])
            harness.expect(len(t["certificate_chain"]) == 2, len(t["certificate_chain"]))
            leaf, ca = (os.path.join(h.tmp, n) for n in ("leaf.pem", "ca.pem"))
            open(leaf, "w").write(t["certificate_chain"][0])
            open(ca, "w").write(t["certificate_chain"][1])
            r = h.run(["openssl", "verify", "-CAfile", ca, "-purpose", "sslserver", "-verify_hostname", "app.example", leaf])
            harness.expect(r.rc == 0, r)
            r = h.run(["openssl", "x509", "-in", leaf, "-noout", "-text"])
            harness.expect("IP Address:127.0.0.1" in r.out and "DNS:app.example" in r.out, r.out[:2000])
            again = call(h, dsock, "/GetTlsKey", {"subject": "app.example"})
            harness.expect(again["key"] != t["key"], "GetTlsKey returned the same key twice")
            with open(os.path.join(sim, "appkeys.json")) as f:
                harness.expect(json.load(f)["ca_cert"] == t["certificate_chain"][1], "the CA is not appkeys' ca_cert verbatim")

        with h.case("GetTlsKey: RA-TLS certificate verifies with dstack verify (binding to its key)"):
            t = call(h, dsock, "/GetTlsKey", {"subject": "ratls", "usage_ra_tls": True, "with_app_info": True,
                                             "not_before": 1700000000, "not_after": 2000000000})
            path = os.path.join(h.tmp, "ratls.pem")
            with open(path, "w") as f:
                f.write("".join(t["certificate_chain"]))
            r = verify(h, sim, path)
            harness.expect(r.rc == 0 and r.out.startswith("VALID"), r)
            r = h.run(["openssl", "x509", "-in", path, "-noout", "-text"])
            harness.expect("1.3.6.1.4.1.62397.1.8" in r.out and "1.3.6.1.4.1.62397.1.9" in r.out, "extensions missing")
            harness.expect("Nov 14 22:13:20 2023 GMT" in r.out, "not_before not applied")
            err = error_of(h, dsock, "/GetTlsKey", {"not_before": 5, "not_after": 5})
            harness.expect(err == "not_before must be earlier than not_after", err)

        with h.case("Info: fields in upstream's order, tcb_info JSON with the replayed log and the compose text"):
            info = call(h, dsock, "/Info")
            keys = ["app_id", "instance_id", "app_cert", "tcb_info", "app_name", "device_id", "mr_aggregated",
                    "os_image_hash", "key_provider_info", "compose_hash", "vm_config", "cloud_vendor", "cloud_product"]
            harness.expect(list(info.keys()) == keys, list(info.keys()))
            tcb = json.loads(info["tcb_info"])
            for k in ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]:
                harness.expect(len(tcb[k]) == 96, f"{k}: {tcb[k]}")
            with open(os.path.join(sim, "app-compose.json")) as f:
                compose = f.read()
            harness.expect(tcb["app_compose"] == compose, "app_compose is not the file's text")
            harness.expect(info["compose_hash"] == hashlib.sha256(compose.encode()).hexdigest(), "compose hash")
            harness.expect(info["device_id"] == hashlib.sha256(b"").hexdigest(), info["device_id"])
            harness.expect(json.loads(info["key_provider_info"]) == {"name": "none", "id": ""}, info["key_provider_info"])
            harness.expect(info["app_id"] == info["compose_hash"][:40], "app id is not the compose hash's first 20 bytes")
            harness.expect(info["app_cert"].count("BEGIN CERTIFICATE") == 2, "app_cert is not a 2-certificate chain")
            harness.expect(len(tcb["event_log"]) > 8 and all("preimage" not in e for e in tcb["event_log"]), "event_log")
            first["info"] = info
            first["boot_rtmr3"] = tcb["rtmr3"]

        with h.case("Sign and Verify: each algorithm; a tampered signature is valid:false; bad sizes are 400"):
            for algorithm, data in [("ed25519", "68656c6c6f"), ("secp256k1", "68656c6c6f"), ("k256", "00"),
                                    ("secp256k1_prehashed", "aa" * 32)]:
                s = call(h, dsock, "/Sign", {"algorithm": algorithm, "data": data})
                harness.expect(len(s["signature_chain"]) == 3 and len(bytes.fromhex(s["signature"])) == 64, s)
                v = call(h, dsock, "/Verify", {"algorithm": algorithm, "data": data, "signature": s["signature"],
                                               "public_key": s["public_key"]})
                harness.expect(v == {"valid": True}, f"{algorithm}: {v}")
                bad = bytearray(bytes.fromhex(s["signature"]))
                bad[5] ^= 1
                v = call(h, dsock, "/Verify", {"algorithm": algorithm, "data": data, "signature": bad.hex(),
                                               "public_key": s["public_key"]})
                harness.expect(v == {"valid": False}, f"{algorithm} tampered: {v}")
            err = error_of(h, dsock, "/Sign", {"algorithm": "secp256k1_prehashed", "data": "00"})
            harness.expect(err == "Pre-hashed signing requires a 32-byte digest, but received 1 bytes", err)
            err = error_of(h, dsock, "/Verify", {"algorithm": "ed25519", "data": "00", "signature": "00" * 64,
                                                "public_key": "00"})
            harness.expect("invalid public key" in err, err)

        with h.case("Version, GpuInfo (no GPU here: empty), and Empty-input methods ignore their body"):
            v = call(h, dsock, "/Version")
            harness.expect(set(v) == {"version", "rev"} and v["version"], v)
            harness.expect(call(h, dsock, "/GpuInfo") == {"attestation": ""}, "GpuInfo")
            status, text = curl(h, dsock, "/Version", "not json at all")
            harness.expect(status == 200, f"{status} {text}")

        with h.case("EmitEvent: measured into RTMR3 and in the next quote's log; reserved and bad names refused"):
            status, text = curl(h, dsock, "/EmitEvent", {"event": "my-app-event", "payload": "0102"})
            harness.expect(status == 200 and text == "null", f"{status} {text}")
            q = call(h, dsock, "/GetQuote", {"report_data": ""})
            events = json.loads(q["event_log"])
            harness.expect(events[-1]["event"] == "my-app-event" and events[-1]["event_payload"] == "0102", events[-1])
            harness.expect(runtime_replay(events) == rtmr3_of(bytes.fromhex(q["quote"])), "no replay after EmitEvent")
            for name, why in [("compose-hash", "reserved"), ("system-ready", "reserved"), ("a:b", "':'"),
                              ("bad\u0001name", ""), ("", "")]:
                err = error_of(h, dsock, "/EmitEvent", {"event": name, "payload": ""})
                harness.expect(why in err, f"{name!r}: {err}")

        with h.case("wire rules: /prpc/GetKey is 404 on dstack.sock; unknown method 400 'Service not found'; error shape"):
            status, _ = curl(h, dsock, "/prpc/GetKey", {})
            harness.expect(status == 404, status)
            status, text = curl(h, dsock, "/DstackGuest.GetKey", {})
            harness.expect(status == 400 and text == '{\n  "error": "Service not found: DstackGuest.GetKey"\n}', text)

        with h.case("Tappd: DeriveKey deterministic per path (both route forms); DeriveK256Key = GetKey"):
            a = call(h, tsock, "/prpc/Tappd.DeriveKey", {"path": "/", "subject": "tappd"})
            b = call(h, tsock, "/prpc/DeriveKey", {"path": "/", "subject": "tappd"})
            harness.expect(a["key"] == b["key"] and a["key"].startswith("-----BEGIN PRIVATE KEY-----"), "not deterministic")
            c = call(h, tsock, "/prpc/Tappd.DeriveKey", {"path": "/other"})
            harness.expect(c["key"] != a["key"], "another path, same key")
            r = call(h, tsock, "/prpc/Tappd.DeriveKey", {"path": "/", "random_seed": True})
            harness.expect(r["key"] != a["key"], "random_seed gives the path key")
            k = call(h, tsock, "/prpc/Tappd.DeriveK256Key", {"path": "/app", "purpose": "signing"})
            harness.expect(k["k256_key"] == first["key"] and len(k["k256_signature_chain"]) == 2, k)

        with h.case("Tappd TdxQuote: every hash algorithm; effective algorithm and prefix echoed; raw needs 64 bytes"):
            content = b"hello"
            for algorithm, expected in [("", hashlib.sha512(b"app-data:" + content).digest()),
                                        ("sha256", hashlib.sha256(b"app-data:" + content).digest()),
                                        ("sha384", hashlib.sha384(b"app-data:" + content).digest()),
                                        ("sha3-256", hashlib.sha3_256(b"app-data:" + content).digest()),
                                        ("sha3-512", hashlib.sha3_512(b"app-data:" + content).digest())]:
                r = call(h, tsock, "/prpc/Tappd.TdxQuote", {"report_data": content.hex(), "hash_algorithm": algorithm})
                harness.expect(list(r) == ["quote", "event_log", "hash_algorithm", "prefix"], list(r))
                harness.expect(r["hash_algorithm"] == (algorithm or "sha512") and r["prefix"] == "app-data", r["prefix"])
                quote = bytes.fromhex(r["quote"])
                harness.expect(quote[REPORT_DATA_OFFSET:REPORT_DATA_OFFSET + 64] == expected.ljust(64, b"\0"), algorithm)
            r = call(h, tsock, "/prpc/Tappd.TdxQuote", {"report_data": "aa", "prefix": "custom-domain"})
            harness.expect(r["prefix"] == "custom-domain", r["prefix"])
            r = call(h, tsock, "/prpc/Tappd.TdxQuote", {"report_data": "bb" * 64, "hash_algorithm": "raw"})
            harness.expect(r["prefix"] == "" and r["hash_algorithm"] == "raw", r)
            harness.expect(bytes.fromhex(r["quote"])[REPORT_DATA_OFFSET:REPORT_DATA_OFFSET + 64] == b"\xbb" * 64, "raw")
            err = error_of(h, tsock, "/prpc/Tappd.TdxQuote", {"report_data": "bb", "hash_algorithm": "raw"})
            harness.expect(err == "invalid content length", err)
            err = error_of(h, tsock, "/prpc/Tappd.TdxQuote", {"report_data": "bb", "hash_algorithm": "md5"})
            harness.expect(err == "invalid hash algorithm", err)
            r = call(h, tsock, "/prpc/Tappd.RawQuote", {"report_data": "cc" * 64})
            harness.expect(r["hash_algorithm"] == "raw", r)
            harness.expect(call(h, tsock, "/prpc/Tappd.Info")["app_id"] == first["info"]["app_id"], "Tappd.Info")
            harness.expect(call(h, tsock, "/prpc/Tappd.Version")["version"], "Tappd.Version")

        with h.case("bad input: invalid hex, report data over 64 bytes, unknown algorithm, unknown field, wrong type"):
            err = error_of(h, dsock, "/GetQuote", {"report_data": "xyz"})
            harness.expect("report_data" in err, err)
            err = error_of(h, dsock, "/GetQuote", {"report_data": "00" * 65})
            harness.expect(err == "Report data is too long", err)
            err = error_of(h, dsock, "/GetKey", {"algorithm": "rsa"})
            harness.expect(err == "Unsupported algorithm", err)
            err = error_of(h, dsock, "/GetQuote", {"reportdata": "00"})
            harness.expect("unknown field 'reportdata'" in err and "report_data" in err, err)
            err = error_of(h, dsock, "/GetKey", {"path": 5})
            harness.expect("path" in err, err)
            err = error_of(h, dsock, "/GetKey", '{"path":"a","path":"b"}')
            harness.expect("duplicate" in err.lower(), err)

        with h.case("bad input: a 100 MB body is refused without reading it all, and the agent serves on"):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(dsock)
            s.sendall(b"POST /GetKey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 104857600\r\n\r\n")
            reply = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            s.close()
            harness.expect(reply.startswith(b"HTTP/1.1 413") or reply.startswith(b"HTTP/1.1 400"), reply[:200])
            harness.expect(call(h, dsock, "/Version")["version"], "agent stopped serving")

        with h.case("bad input: a client that never finishes its request is cut off; others are served meanwhile"):
            s = socket.socket(socket.AF_UNIX)
            s.connect(dsock)
            s.sendall(b"POST /GetKey HTTP/1.1\r\nHost: x\r\nContent-Le")
            start = time.monotonic()
            harness.expect(call(h, dsock, "/GetKey", {"path": "x"})["key"], "not served while a client stalls")
            s.settimeout(20)
            try:
                data = s.recv(4096)
                while data:
                    data = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                pass
            elapsed = time.monotonic() - start
            s.close()
            harness.expect(elapsed < 15, f"still connected after {elapsed:.1f} s")

        with h.case("concurrency: 200 clients mixing EmitEvent and GetQuote; every quote's log replays to its RTMR3"):
            results, errors = [], []

            def client(i):
                try:
                    if i % 2:
                        status, text = curl(h, dsock, "/EmitEvent", {"event": f"load-{i}", "payload": f"{i:04x}"})
                        harness.expect(status == 200, text)
                    else:
                        status, text = curl(h, dsock, "/GetQuote", {"report_data": f"{i:04x}"})
                        harness.expect(status == 200, text)
                        results.append(json.loads(text))
                except Exception as e:  # noqa: BLE001 - recorded and reported below
                    errors.append(f"client {i}: {e}")

            threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            harness.expect(not errors, "; ".join(errors[:5]))
            harness.expect(len(results) == 100, f"{len(results)} quotes")
            for q in results:
                events = json.loads(q["event_log"])
                harness.expect(runtime_replay(events) == rtmr3_of(bytes.fromhex(q["quote"])),
                               f"quote {q['report_data'][:4]}: log does not replay")
            final = json.loads(call(h, dsock, "/GetQuote", {})["event_log"])
            emitted = {e["event"] for e in final if e["event"].startswith("load-")}
            harness.expect(len(emitted) == 100, f"{len(emitted)} of 100 events in the log")

        with h.case("attack: 100 idle connections from one app do not lock other apps out of dstack.sock"):
            idle = []
            try:
                for _ in range(100):
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(dsock)
                    idle.append(s)
                for i in range(20):
                    harness.expect(call(h, dsock, "/GetKey", {"path": f"/x{i}"})["key"], "GetKey refused")
            finally:
                for s in idle:
                    s.close()

        with h.case("attack: 1100 connections that each sent one byte do not lock other apps out (stalled ones make room)"):
            held = []
            try:
                for _ in range(1100):
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(dsock)
                    s.send(b"P")
                    held.append(s)
                time.sleep(1.5)
                for i in range(10):
                    harness.expect(call(h, dsock, "/GetKey", {"path": f"/y{i}"})["key"], "GetKey refused")
            finally:
                for s in held:
                    s.close()

        with h.case("attack: look-alike reserved names, repeated query keys, times after 9999 are refused"):
            for name in ["App-Id", "app-id ", "SYSTEM-READY"]:
                err = error_of(h, dsock, "/EmitEvent", {"event": name, "payload": ""})
                harness.expect("reserved" in err, f"{name!r}: {err}")
            status, text = curl(h, dsock, "/GetKey?path=a&path=b")
            harness.expect(status == 400 and "duplicate key 'path'" in text, text)
            err = error_of(h, dsock, "/GetTlsKey", {"not_after": 9223372036854775808})
            harness.expect("after the year 9999" in err, err)

        with h.case("external listener: Worker Info/Version/GetAttestationForAppKey, /metrics, the info page"):
            info = call(h, esock, "/prpc/Worker.Info")
            harness.expect(info["app_id"] == first["info"]["app_id"] and info["tcb_info"], "Worker.Info")
            harness.expect(call(h, esock, "/prpc/Version")["version"], "Worker.Version via trimmed name")
            a = call(h, esock, "/prpc/Worker.GetAttestationForAppKey", {"algorithm": "ed25519"})
            rd = bytes.fromhex(a["report_data"])
            harness.expect(rd.startswith(b"dip1::ed25519-pk:"), rd)
            pub = base64.urlsafe_b64decode(rd[len(b"dip1::ed25519-pk:"):].rstrip(b"\0") + b"=")
            s = call(h, dsock, "/Sign", {"algorithm": "ed25519", "data": "00"})
            harness.expect(pub.hex() == s["public_key"], "dip1 key is not the signing key")
            err = error_of(h, esock, "/prpc/Worker.GetAttestationForAppKey", {"algorithm": "secp256k1_prehashed"})
            harness.expect(err == "Unsupported algorithm", err)
            status, text = curl(h, esock, "/metrics")
            harness.expect(status == 200 and "dstack_total_memory" in text and "# TYPE" in text, text[:300])
            status, text = curl(h, esock, "/")
            harness.expect(status == 200 and "<html>" in text and first["info"]["app_id"] in text, text[:300])

        with h.case("GuestApi (unix stand-in for vsock): Info, SysInfo, NetworkInfo; unfinished methods say so"):
            g = call(h, gsock, "/api/Info")
            harness.expect(list(g) == ["version", "app_id", "instance_id", "app_cert", "tcb_info", "device_id"], list(g))
            s = call(h, gsock, "/api/SysInfo")
            harness.expect(s["num_cpus"] >= 1 and s["total_memory"] > 0 and s["disks"], s)
            n = call(h, gsock, "/api/NetworkInfo")
            harness.expect(set(n) == {"dns_servers", "gateways", "interfaces", "wg_info"}, n)
            err = error_of(h, gsock, "/api/Shutdown", {})
            harness.expect(err.startswith("not implemented"), err)
        first["rtmr3"] = json.loads(call(h, dsock, "/Info")["tcb_info"])["rtmr3"]
        harness.expect(first["rtmr3"] != first["boot_rtmr3"], "the app events did not move RTMR3")

    with h.group("the runtime log's budget keeps every form of evidence carriable"):
        budget = h.tmpdir("budget")
        bsock = os.path.join(budget, "dstack.sock")
        with agent(h, budget, name="agent (log budget)"):
            with h.case("EmitEvent until the log is full: refused with the budget; RA-TLS and GetQuote still verify"):
                refused = None
                for i in range(40):
                    status, text = curl(h, bsock, "/EmitEvent", {"event": f"big-{i}", "payload": "ab" * 4096})
                    if status != 200:
                        refused = json.loads(text)["error"]
                        break
                harness.expect(refused and refused.startswith("runtime event log full"), refused)
                t = call(h, bsock, "/GetTlsKey", {"subject": "full", "usage_ra_tls": True})
                pem = os.path.join(h.tmp, "full-ratls.pem")
                with open(pem, "w") as f:
                    f.write("".join(t["certificate_chain"]))
                r = verify(h, budget, pem)
                harness.expect(r.rc == 0, r)
                q = call(h, bsock, "/GetQuote", {"report_data": "01"})
                qpath = os.path.join(h.tmp, "full-quote.json")
                with open(qpath, "w") as f:
                    json.dump(q, f)
                r = verify(h, budget, qpath)
                harness.expect(r.rc == 0, r)
                harness.expect(call(h, bsock, "/Info")["app_cert"], "Info.app_cert empty with a full log")

        legacy = h.tmpdir("legacy")
        lsock = os.path.join(legacy, "dstack.sock")
        with agent(h, legacy, "--legacy-cert-extensions", name="agent (legacy extensions)"):
            with h.case("--legacy-cert-extensions: the smaller budget keeps RA-TLS with 1.1/1.2 working when full"):
                refused = None
                for i in range(300):
                    status, text = curl(h, lsock, "/EmitEvent", {"event": f"e{i:03d}-" + '"' * 40, "payload": "22" * 24})
                    if status != 200:
                        refused = json.loads(text)["error"]
                        break
                harness.expect(refused and refused.startswith("runtime event log full"), refused)
                t = call(h, lsock, "/GetTlsKey", {"subject": "legacy", "usage_ra_tls": True})
                pem = os.path.join(h.tmp, "legacy-ratls.pem")
                with open(pem, "w") as f:
                    f.write("".join(t["certificate_chain"]))
                r = h.run(["openssl", "x509", "-in", pem, "-noout", "-text"])
                harness.expect("1.3.6.1.4.1.62397.1.1" in r.out and "1.3.6.1.4.1.62397.1.2" in r.out, "no legacy extensions")
                r = verify(h, legacy, pem)
                harness.expect(r.rc == 0, r)

    with agent(h, sim, name="agent (restarted)"):
        with h.case("restart = a boot of the simulated CVM: same keys, identity, MRTD, RTMR0-2 and boot RTMR3"):
            a = call(h, dsock, "/GetKey", {"path": "/app", "purpose": "signing"})
            harness.expect(a["key"] == first["key"], "key changed")
            info = call(h, dsock, "/Info")
            for field in ["app_id", "instance_id", "compose_hash", "mr_aggregated"]:
                harness.expect(info[field] == first["info"][field], f"{field} changed")
            tcb = json.loads(info["tcb_info"])
            old = json.loads(first["info"]["tcb_info"])
            for field in ["mrtd", "rtmr0", "rtmr1", "rtmr2"]:
                harness.expect(tcb[field] == old[field], f"{field} changed")
            harness.expect(tcb["rtmr3"] == first["boot_rtmr3"], "RTMR3 is not the boot's")
            names = [e["event"] for e in tcb["event_log"] if e["imr"] == 3]
            harness.expect(names.count("system-ready") == 1 and "my-app-event" not in names, names)

    with h.group("upstream fixture"):
        fx = h.tmpdir("fixture")
        for name in ["app-compose.json", "appkeys.json", "sys-config.json"]:
            shutil.copy(h.vector(f"dstack/simulator/{name}"), fx)
        fixture = h.vector("dstack/attestation.bin")
        fsock = os.path.join(fx, "dstack.sock")
        with agent(h, fx, "--fixture", fixture, name="agent --fixture"):
            with h.case("--fixture: Info decodes the fixture as upstream's simulator (app id, mr_aggregated, OS image)"):
                info = call(h, fsock, "/Info")
                harness.expect(info["app_id"] == "5bb4ff9a3837357f19dc176407a5709c62eb6c56", info["app_id"])
                harness.expect(info["instance_id"] == "1691ed1b47506cad7d08834668691d88246f5b1f", info["instance_id"])
                harness.expect(info["mr_aggregated"] == "85334a62c97d0f8bf82d0245d31b539d17a2d7c258e2a13efc928aaea0e107cb",
                               info["mr_aggregated"])
                harness.expect(info["os_image_hash"] == "e61be43dd1cc6a6f5edefd7c51b608983780839b0000ce60dd99737dcffe09b9",
                               info["os_image_hash"])
                harness.expect(info["device_id"] == hashlib.sha256(b"").hexdigest(), info["device_id"])
            with h.case("--fixture: GetQuote patches the report data into bytes 568..632; Attest stays V0"):
                q = call(h, fsock, "/GetQuote", {"report_data": "5a" * 64})
                quote = bytes.fromhex(q["quote"])
                with open(fixture, "rb") as f:
                    original = f.read()
                harness.expect(quote[REPORT_DATA_OFFSET:REPORT_DATA_OFFSET + 64] == b"\x5a" * 64, "not patched")
                harness.expect(len(quote) == 5010, len(quote))
                a = bytes.fromhex(call(h, fsock, "/Attest", {"report_data": "5a" * 64})["attestation"])
                harness.expect(a[0] == 0 and len(a) == len(original), f"first byte {a[0]}, {len(a)} bytes")
                harness.expect(a.count(b"\x5a" * 64) >= 2, "report data not patched in both places")
                err = error_of(h, fsock, "/EmitEvent", {"event": "x", "payload": ""})
                harness.expect(err == "runtime event emission is unavailable in simulator mode", err)
            with h.case("--fixture: GetKey with upstream's appkeys gives upstream's key and KMS signature"):
                k = call(h, fsock, "/GetKey", {"path": "/", "purpose": ""})
                with open(os.path.join(fx, "appkeys.json")) as f:
                    keys = json.load(f)
                harness.expect(k["signature_chain"][1] == keys["k256_signature"], "chain[1] is not the KMS signature")

    with h.group("v2 runtime events and the verifier service"):
        v2 = h.tmpdir("v2")
        with open(os.path.join(v2, "app-compose.json"), "w") as f:
            json.dump({"manifest_version": 2, "name": "v2-app", "runner": "docker-compose",
                       "docker_compose_file": "services: {}\n", "key_provider": "none", "event_log_version": 2,
                       "public_tcbinfo": False, "public_sysinfo": False}, f)
        vsock = os.path.join(v2, "dstack.sock")
        with agent(h, v2, name="agent (event log v2)"):
            with h.case("event_log_version 2: Attest is V1 (MessagePack) and verifies; GetQuote carries preimages"):
                a = bytes.fromhex(call(h, vsock, "/Attest", {"report_data": "22" * 64})["attestation"])
                harness.expect(0x80 <= a[0] <= 0x8f or a[0] in (0xde, 0xdf), f"first byte {a[0]:#x}")
                path = os.path.join(h.tmp, "v1.bin")
                with open(path, "wb") as f:
                    f.write(a)
                r = verify(h, v2, path)
                harness.expect(r.rc == 0 and "22" * 64 in r.out, r)
                q = call(h, vsock, "/GetQuote", {"report_data": "33"})
                runtime = [e for e in json.loads(q["event_log"]) if e["imr"] == 3]
                harness.expect(all(e.get("version") == 2 and e.get("preimage") for e in runtime), runtime[:2])
                qpath = os.path.join(h.tmp, "v2-quote.json")
                with open(qpath, "w") as f:
                    json.dump(q, f)
                r = verify(h, v2, qpath)
                harness.expect(r.rc == 0 and r.out.startswith("VALID"), r)
            with h.case("public_tcbinfo/public_sysinfo false: the external listener hides tcb_info, vm_config, /metrics"):
                ext = os.path.join(v2, "external.sock")
                info = call(h, ext, "/prpc/Worker.Info")
                harness.expect(info["tcb_info"] == "" and info["vm_config"] == "" and info["app_id"], info)
                harness.expect(call(h, vsock, "/Info")["tcb_info"], "the internal socket must still show tcb_info")
                harness.expect(call(h, os.path.join(v2, "guest.sock"), "/api/Info")["tcb_info"] == "", "GuestApi.Info")
                status, _ = curl(h, ext, "/metrics")
                harness.expect(status == 403, status)
            with h.case("verify serve (the verifier service, sim root): GetQuote JSON and a V1 attestation"):
                tee_dir = os.path.join(v2, "tee")
                with h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--trust-root",
                               os.path.join(tee_dir, "root.pem"), "--collateral", os.path.join(tee_dir, "collateral.json"),
                               "--accept-simulated", "--skip-os-image"], name="verify serve") as verifier:
                    def post(body):
                        r = harness.http_request(verifier.address, "POST", "/verify", json.dumps(body),
                                                 {"Content-Type": "application/json"}, timeout=30)
                        harness.expect(r.status == 200, r)
                        return r.json()
                    q = call(h, vsock, "/GetQuote", {"report_data": "44" * 64})
                    r = post({"quote": q["quote"], "event_log": q["event_log"], "vm_config": q["vm_config"]})
                    harness.expect(r["is_valid"] is True and r["details"]["report_data"] == "44" * 64, r)
                    harness.expect(r["details"]["app_info"]["compose_hash"] == call(h, vsock, "/Info")["compose_hash"], r)
                    a = call(h, vsock, "/Attest", {"report_data": "55" * 64})
                    r = post({"attestation": a["attestation"]})
                    harness.expect(r["is_valid"] is True and r["details"]["report_data"] == "55" * 64, r)
                    # The stack's report data (the last run of 0x55 fixints) no longer matching the quote's.
                    blob = bytes.fromhex(a["attestation"])
                    at = blob.rfind(b"\x55" * 64)
                    harness.expect(at > 0 and blob.find(b"\x55" * 64) < at, "report data not found twice")
                    bad = blob[:at] + b"\x56" * 64 + blob[at + 64:]
                    r = post({"attestation": bad.hex()})
                    harness.expect(r["is_valid"] is False, f"a changed report data still verifies: {r}")

    with h.case("GuestApi on vsock: the listener binds vsock:any:PORT (no vsock loopback here to connect through)"):
        vs = h.tmpdir("vsock")
        port = 20000 + os.getpid() % 40000
        try:
            probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            probe.bind((socket.VMADDR_CID_ANY, port))
            probe.close()
        except (AttributeError, OSError) as e:
            h.skip_case(f"this kernel cannot listen on vsock: {e}")
        with agent(h, vs, "--guest-api", f"vsock:any:{port}", name="agent (vsock)") as server:
            lines = " ".join(server.stdout_lines)
            harness.expect(f"vsock:any:{port}" in lines, lines)

    with h.case("--config: upstream's dstack.toml keys (files, internal and internal-v0 addresses)"):
        conf_dir = h.tmpdir("config")
        shutil.copytree(sim, os.path.join(conf_dir, "sim"), ignore=shutil.ignore_patterns("*.sock"))
        d = os.path.join(conf_dir, "sim")
        toml = os.path.join(conf_dir, "dstack.toml")
        with open(toml, "w") as f:
            f.write(f"""[default]
workers = 8
keep_alive = 10

[default.core]
keys_file = "{d}/appkeys.json"
compose_file = "{d}/app-compose.json"
sys_config_file = "{d}/sys-config.json"
data_disks = ["/"]

[internal-v0]
address = "unix:{conf_dir}/tappd.sock"
reuse = true

[internal]
address = "unix:{conf_dir}/dstack.sock"
reuse = true

[external]
address = "127.0.0.1"
port = 0
""")
        with h.server([h.dstack, "agent", "--config", toml, "--tee", "sim", "--sim-state", os.path.join(d, "tee"),
                       "--runtime-log-dir", os.path.join(d, "tee"), "--guest-api", "none"], count=3,
                      name="agent --config") as server:
            harness.expect(call(h, os.path.join(conf_dir, "dstack.sock"), "/GetKey",
                                {"path": "/app", "purpose": "signing"})["key"] == first["key"], "keys from the config")
            harness.expect(any(a.kind == "tcp" for a in server.addresses), [str(a) for a in server.addresses])

    with h.case("systemd: socket activation (dstack.sock fd 3, tappd.sock fd 4), READY=1 and watchdog pings"):
        act = h.tmpdir("activated")
        shutil.copytree(sim, os.path.join(act, "sim"), ignore=shutil.ignore_patterns("*.sock"))
        socks = []
        for name in ["d.sock", "t.sock"]:
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(act, name))
            s.listen(16)
            socks.append(s)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(act, "notify.sock"))
        notify.settimeout(10)
        launcher = ("import os,sys\nos.dup2(int(sys.argv[1]),3)\nos.dup2(int(sys.argv[2]),4)\n"
                    "os.environ['LISTEN_FDS']='2'\nos.environ['LISTEN_PID']=str(os.getpid())\n"
                    "os.environ['WATCHDOG_PID']=str(os.getpid())\nos.environ['WATCHDOG_USEC']='2000000'\n"
                    "os.environ['NOTIFY_SOCKET']=sys.argv[4]\n"
                    "os.execv(sys.argv[3], [sys.argv[3]] + sys.argv[5:])\n")
        sim2 = os.path.join(act, "sim")
        cmd = [sys.executable, "-c", launcher, str(socks[0].fileno()), str(socks[1].fileno()), h.dstack,
               os.path.join(act, "notify.sock"), "agent",
               "--tee", "sim", "--sim-state", os.path.join(sim2, "tee"), "--runtime-log-dir", os.path.join(sim2, "tee"),
               "--compose-file", os.path.join(sim2, "app-compose.json"),
               "--sys-config-file", os.path.join(sim2, "sys-config.json"),
               "--keys-file", os.path.join(sim2, "appkeys.json"), "--external", "none", "--guest-api", "none"]
        proc = subprocess.Popen(cmd, pass_fds=[s.fileno() for s in socks], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            lines = [proc.stdout.readline() for _ in range(2)]
            harness.expect(all("listening on systemd" in line for line in lines), lines)
            harness.expect(call(h, os.path.join(act, "d.sock"), "/GetKey", {"path": "/app", "purpose": "signing"})["key"]
                           == first["key"], "activated dstack.sock")
            harness.expect("k256_key" in call(h, os.path.join(act, "t.sock"), "/prpc/Tappd.DeriveK256Key", {}),
                           "activated tappd.sock")
            states = [notify.recv(256) for _ in range(3)]
            harness.expect(states[0] == b"READY=1" and states[1:] == [b"WATCHDOG=1", b"WATCHDOG=1"], states)
        finally:
            proc.terminate()
            proc.wait(10)
            for s in socks:
                s.close()
            notify.close()

    with h.case("start-up: a runtime log that does not replay, or a changed app-compose.json, is refused (sim TEE)"):
        st = h.tmpdir("state")
        shutil.copytree(sim, os.path.join(st, "sim"), ignore=shutil.ignore_patterns("*.sock"))
        d = os.path.join(st, "sim")
        base = [h.dstack, "agent", "--tee", "sim", "--sim-state", os.path.join(d, "tee"), "--runtime-log-dir",
                os.path.join(d, "tee"), "--compose-file", os.path.join(d, "app-compose.json"),
                "--sys-config-file", os.path.join(d, "sys-config.json"), "--keys-file", os.path.join(d, "appkeys.json"),
                "--dstack-socket", "unix:" + os.path.join(st, "d.sock"), "--tappd-socket", "none",
                "--external", "none", "--guest-api", "none"]
        with h.server(base, count=1, name="agent --tee sim") as server:
            harness.expect(call(h, os.path.join(st, "d.sock"), "/Version")["version"], "consistent state refused")
        with open(os.path.join(d, "tee", "runtime_events.log"), "a") as f:
            f.write('{"event":"app-id","payload":"AAAA"}\n')
        r = h.run(base, timeout=20)
        harness.expect(r.rc != 0 and "runtime_events.log" in r.err and "does not replay to RTMR3" in r.err, r)
        # The simulator measures a fresh boot instead, so the same directory starts again.
        with agent(h, d, name="agent (after a bad log)"):
            q = call(h, os.path.join(d, "dstack.sock"), "/GetQuote", {})
            harness.expect(runtime_replay(json.loads(q["event_log"])) == rtmr3_of(bytes.fromhex(q["quote"])), "replay")
        with open(os.path.join(d, "app-compose.json")) as f:
            compose = json.load(f)
        compose["name"] = "edited"
        with open(os.path.join(d, "app-compose.json"), "w") as f:
            json.dump(compose, f)
        r = h.run(base, timeout=20)
        harness.expect(r.rc != 0 and "app-compose.json" in r.err and "measured at boot" in r.err, r)

    with h.case("start-up errors name the file and the field"):
        bad = h.tmpdir("bad")
        shutil.copytree(sim, os.path.join(bad, "sim"), ignore=shutil.ignore_patterns("*.sock"))
        d = os.path.join(bad, "sim")
        with open(os.path.join(d, "app-compose.json"), "w") as f:
            f.write('{"manifest_version": 2, "name": "x", "runner": "docker-compose", "public_tcbinfo": "yes"}')
        r = h.run([h.dstack, "agent", "--simulator", d], timeout=20)
        harness.expect(r.rc != 0 and "app-compose.json" in r.err and "public_tcbinfo" in r.err, r)
        os.remove(os.path.join(d, "app-compose.json"))
        r = h.run([h.dstack, "agent", "--tee", "sim", "--sim-state", os.path.join(d, "tee"), "--runtime-log-dir",
                   os.path.join(d, "tee"), "--compose-file", os.path.join(d, "missing.json"), "--external", "none"],
                  timeout=20)
        harness.expect(r.rc != 0 and "missing.json" in r.err, r)
        r = h.run([h.dstack, "agent"], timeout=20)
        harness.expect(r.rc != 0 and "--simulator" in r.err, r)
        bad_toml = os.path.join(bad, "bad.toml")
        with open(bad_toml, "w") as f:
            f.write('[internal]\naddress = "0.0.0.0:0"\nport = 8090\n')
        r = h.run([h.dstack, "agent", "--simulator", os.path.join(bad, "cfg"), "--config", bad_toml], timeout=20)
        harness.expect(r.rc == 2 and "already has a port; drop the port key" in r.err, r)


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
