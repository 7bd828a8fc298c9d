#!/usr/bin/env python3
"""Integration test: hostile peers and forged evidence against the P-256 engine.

usage: python3 tests/integration/test_p256_attack.py BUILD_DIR

Every P-256 operation of the program (TLS key exchange and handshake signatures, X.509 and quote
signature checks) goes through one engine (meson option p256; OpenSSL's libcrypto by default).
This script attacks it through the real binaries, on loopback only:
  1. TLS peers against net-test-server's TLS listener (raw records, tls_raw.py): TLS 1.3 key_share
     and TLS 1.2 ECDHE ClientKeyExchange with 12 kinds of bad point (off the curve, coordinates
     >= p, infinity, compressed, hybrid, wrong lengths); each must be refused (alert or close, no
     key schedule) while a good point is accepted; 3000 refused handshakes and 40 half-open ones
     must leave the server serving, with its RSS bounded. Static-ECDH suites must be refused (the
     certificate key is a signing key only).
  2. A hostile TLS 1.3 server against our client (`dstack verify collateral --pccs https://...`):
     after a HelloRetryRequest for secp256r1 it answers with a bad point; the client must abort.
  3. Forged evidence through `dstack verify`: the real TDX quote with its quote and QE report
     signatures mutated (r or s = 0, n, r + n, all ones) must be INVALID with that check failed
     and the later ones not checked; a high-s signature (still a valid ECDSA signature) verifies.
     An RA-TLS certificate (made here with the openssl CLI) with its signature mutated must fail
     its signature check.
  4. `dstack verify serve --threads 4` under 8 parallel clients posting good and forged quotes:
     every answer right, RSS bounded; SIGTERM during that load: exit 0, promptly.
  5. OPENSSL_CONF (a config that loads a provider and asks for FIPS properties, and a malformed
     one), OPENSSL_MODULES and OPENSSL_ia32cap (every CPU feature off): verdicts byte-identical,
     and TLS 1.3 and 1.2 handshakes (P-256 signature and ECDH) still succeed.
Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard library plus the curl and openssl
binaries; bounded in time (a watchdog alarm ends the whole script).
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness  # next to this file
import tls_raw  # next to this file

TDX_NOW = "1752919234"
TIME_LIMIT = 110            # seconds for the whole script
HANDSHAKE_TIMEOUT_MS = 1500
FLOOD = 3000                # refused handshakes in the flood
HALF_OPEN = 40              # below the server's 64 connections per address
RSS_GROWTH_LIMIT_KB = 2048  # what a flood or the load may add to the server's RSS
LOAD_SECONDS = 12
ALERT_HANDSHAKE_FAILURE = 40

# TDX v4 quote layout (spec/verifier.md): header 48, TD report 584, signature data length 4, then
# the quote signature (r || s), the attestation key, and the QE certification data (type 2 bytes,
# size 4 bytes) whose first 384 bytes are the QE report, followed by the QE report signature.
QUOTE_SIGNATURE = 48 + 584 + 4
QE_REPORT_SIGNATURE = QUOTE_SIGNATURE + 64 + 64 + 6 + 384

h = None  # the Harness, set by main()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise harness.Failure(f"no VmRSS for {pid}")


def sanitized():
    """Whether BUILD_DIR is a sanitizer build: ASan's quarantine holds freed memory, so RSS says
    nothing there (its leak check at exit does that job)."""
    try:
        with open(os.path.join(h.build_dir, "meson-info", "intro-buildoptions.json")) as f:
            options = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError):
        return False
    return options.get("b_sanitize", "none") not in ("none", "", [])


def check_rss_growth(before, after, what):
    if sanitized():
        print(f"     (sanitizer build: RSS growth of {after - before} kB not judged)")
        return
    harness.expect(after - before <= RSS_GROWTH_LIMIT_KB, f"RSS grew by {after - before} kB {what}")


def make_certificate(directory):
    key, cert = os.path.join(directory, "server.key"), os.path.join(directory, "server.pem")
    for step in (["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                 ["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=localhost", "-days", "2",
                  "-addext", "subjectAltName=DNS:localhost", "-out", cert]):
        r = h.run(step)
        harness.expect(r.rc == 0, f"openssl failed: {r}")
    return cert, key


def tls_server(cert, key, env=None):
    cmd = [h.binary("tests/integration/net-test-server"), "--tls", "127.0.0.1:0", "--tls-cert", cert,
           "--tls-key", key, "--tls-handshake-timeout-ms", str(HANDSHAKE_TIMEOUT_MS)]
    if env is not None:
        cmd = ["env"] + [f"{k}={v}" for k, v in env.items()] + cmd
    return h.server(cmd, ready=r"^ready (tls:\S+)", name="net-test-server")


def curl_health(server, version):
    """GET /health over TLS with P-256 for both the key exchange and the server's signature."""
    flags = ["--tlsv1.3"] if version == "1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
    r = h.run(["curl", "-sS", "-k", "--max-time", "10", "--curves", "prime256v1", *flags,
               f"https://127.0.0.1:{server.address.port}/health"], timeout=30)
    return r.rc == 0 and r.out == "ok", r


# ---- 1. hostile TLS clients ----

def tls13_attempt(port, share):
    """ClientHello with `share` as the secp256r1 key share. Returns (answered with a ServerHello,
    what came next). A refused share ends the handshake before any ServerHello is sent."""
    peer = tls_raw.Peer("127.0.0.1", port)
    try:
        peer.send(tls_raw.tls13_client_hello(share))
        kinds, ending = peer.handshake_until(2)
        if ending is not None:
            return False, ending
        return True, peer.ending()
    finally:
        peer.close()


def tls12_attempt(port, point, timeout=5.0):
    """An ECDHE-ECDSA handshake up to ServerHelloDone, then `point` in the ClientKeyExchange.
    Returns what the server did next: an alert or a close for a refused point; a server that took
    the point waits for our ChangeCipherSpec (("waiting",))."""
    peer = tls_raw.Peer("127.0.0.1", port, timeout=timeout)
    try:
        peer.send(tls_raw.tls12_client_hello())
        kinds, ending = peer.handshake_until(14)
        harness.expect(ending is None and kinds[:3] == [2, 11, 12],
                       f"TLS 1.2 ECDHE-ECDSA handshake did not reach ServerHelloDone: {kinds} {ending}")
        peer.send(tls_raw.tls12_client_key_exchange(point))
        return peer.ending_within(1.0)
    finally:
        peer.close()


def refused(ending):
    return ending[0] in ("alert", "closed")


def case_bad_points(server):
    port = server.address.port
    answered, after = tls13_attempt(port, tls_raw.good_point())
    harness.expect(answered and after == ("record", tls_raw.APPLICATION_DATA),
                   f"TLS 1.3 with a good P-256 share: expected a ServerHello and encrypted records, got {after}")
    after = tls12_attempt(port, tls_raw.good_point())
    harness.expect(after == ("waiting",), f"TLS 1.2 with a good P-256 point: the server did not take it: {after}")
    failures = []
    for name, point in tls_raw.bad_points():
        answered, after = tls13_attempt(port, point)
        if answered or not refused(after):
            failures.append(f"TLS 1.3 key_share {name}: ServerHello {answered}, then {after}")
        after = tls12_attempt(port, point)
        if not refused(after):
            failures.append(f"TLS 1.2 ClientKeyExchange {name}: {after}")
    harness.expect(not failures, "bad points not refused:\n" + "\n".join(failures))
    harness.expect(server.alive(), "the server died")
    for version in ("1.3", "1.2"):
        ok, r = curl_health(server, version)
        harness.expect(ok, f"TLS {version} handshake after the bad points failed: {r}")


def case_static_ecdh_refused(server):
    # TLS_ECDH_ECDSA_* would use the certificate's key for ECDH; it is held as a signing key only.
    for suite in (0xC02D, 0xC004):
        peer = tls_raw.Peer("127.0.0.1", server.address.port)
        try:
            peer.send(tls_raw.tls12_client_hello(suite))
            kinds, ending = peer.handshake_until(14)
        finally:
            peer.close()
        harness.expect(kinds == [] and ending == ("alert", 2, ALERT_HANDSHAKE_FAILURE),
                       f"suite {suite:#06x}: expected a fatal handshake_failure, got {kinds} {ending}")
    ok, r = curl_health(server, "1.2")
    harness.expect(ok, f"TLS 1.2 after the static-ECDH offers failed: {r}")


def case_flood(server):
    port, pid = server.address.port, server.proc.pid
    bad = tls_raw.bad_points()
    for i in range(200):  # warm-up: the allocator's first arenas are not a leak
        tls13_attempt(port, bad[i % len(bad)][1])
    before = rss_kb(pid)
    started = time.monotonic()
    not_refused = []
    for i in range(FLOOD):
        name, point = bad[i % len(bad)]
        if i % 3 == 2:
            after = tls12_attempt(port, point)
            ok = refused(after)
        else:
            answered, after = tls13_attempt(port, point)
            ok = not answered and refused(after)
        if not ok:
            not_refused.append((i, name, after))
            if len(not_refused) >= 5:  # each one that is taken waits out a timeout: stop early
                break
    elapsed = time.monotonic() - started
    after_rss = rss_kb(pid)
    print(f"     {FLOOD} bad handshakes in {elapsed:.1f} s, {FLOOD - len(not_refused)} refused; "
          f"server RSS {before} kB -> {after_rss} kB")
    harness.expect(not not_refused, f"{len(not_refused)} not refused, e.g. {not_refused[:3]}")
    check_rss_growth(before, after_rss, f"over {FLOOD} refused handshakes")
    for version in ("1.3", "1.2"):
        ok, r = curl_health(server, version)
        harness.expect(ok, f"TLS {version} handshake after the flood failed: {r}")


def case_half_open(server):
    port = server.address.port
    hello = tls_raw.tls13_client_hello(tls_raw.good_point())
    held = []
    try:
        for _ in range(HALF_OPEN):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(hello[:len(hello) // 2])  # half a ClientHello, then silence
            held.append(s)
        ok, r = curl_health(server, "1.3")
        harness.expect(ok, f"TLS 1.3 while {HALF_OPEN} handshakes hang: {r}")
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_MS / 1000.0 + 3
        still_open = 0
        for s in held:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                still_open += 1
            except OSError:
                pass
        harness.expect(still_open == 0, f"{still_open} of {HALF_OPEN} half-open handshakes outlived the "
                                        f"{HANDSHAKE_TIMEOUT_MS} ms handshake timeout")
    finally:
        for s in held:
            s.close()


# ---- 2. a hostile TLS server against our client ----

def case_hostile_server(quote):
    outcomes = []
    bad = dict(tls_raw.bad_points())
    chosen = ("off-curve (G with y+1)", "x = p + x of a curve point", "hybrid G (06/07 || x || y)")
    for name, point in [("good", tls_raw.good_point())] + [(name, bad[name]) for name in chosen]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(20)
        seen = {}

        def serve():
            try:
                seen["client"] = tls_raw.serve_bad_key_share(listener, point)
            except Exception as e:  # reported below
                seen["client"] = ("server error", repr(e))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        out = os.path.join(h.tmpdir("collateral"), "out.json")
        r = h.run([h.dstack, "verify", "collateral", quote, "-o", out, "--pccs",
                   f"https://127.0.0.1:{listener.getsockname()[1]}"], timeout=40)
        thread.join(25)
        listener.close()
        outcomes.append((name, seen.get("client"), r))
    good = outcomes[0]
    harness.expect(good[1] == ("waiting",), f"our client did not take a good P-256 server share: {good[1]}")
    for name, client, r in outcomes[1:]:
        harness.expect(client is not None and refused(client),
                       f"server share {name}: our client went on ({client})")
        harness.expect(r.rc == 2 and "TLS handshake" in r.err, f"server share {name}: {r}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_groups_prefer_p256(quote, server):
    """Our TLS 1.3 client sends its one key share for P-256 (not mbedTLS's default X25519), so the
    key exchange runs on the P-256 engine; our TLS 1.2 server picks P-256 for a client that lists
    X25519 first (openssl's default); a TLS 1.3 client with only an X25519 share still connects."""
    cert, key = make_certificate(h.tmpdir("groups"))
    port = free_port()
    trace = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                              "-www", "-trace"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        out = os.path.join(h.tmpdir("groups-out"), "out.json")
        h.run([h.dstack, "verify", "collateral", quote, "-o", out, "--pccs", f"https://127.0.0.1:{port}"], timeout=30)
    finally:
        trace.terminate()
        text = trace.communicate(timeout=10)[0]
    shares = re.findall(r"extension_type=key_share\(51\).*?\n\s*NamedGroup: (\S+)", text)
    harness.expect(shares and shares[0] == "secp256r1", f"our client's first key share: {shares[:1]}")
    for args, want in ((["-tls1_2"], "ECDH, prime256v1"), (["-tls1_3", "-groups", "X25519"], "X25519")):
        r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.address.port}", "-brief", *args],
                  stdin="", timeout=20)
        harness.expect(f"Server Temp Key: {want}" in r.err + r.out, f"s_client {args}: {r}")


# ---- 3. forged evidence ----

def mutated(quote, offset, data):
    out = bytearray(quote)
    out[offset:offset + len(data)] = data
    return bytes(out)


def verify_json(path, extra=(), env=None):
    r = h.run([h.dstack, "verify", path, "--json", *extra], env=env)
    try:
        return r, json.loads(r.out)
    except ValueError:
        raise harness.Failure(f"no JSON verdict: {r}")


def checks_by_id(verdict):
    return {c["id"]: c for c in verdict["checks"]}


def case_forged_quotes(quote_path, collateral):
    with open(quote_path, "rb") as f:
        quote = f.read()
    n = tls_raw.N
    r_value = int.from_bytes(quote[QUOTE_SIGNATURE:QUOTE_SIGNATURE + 32], "big")
    s_value = int.from_bytes(quote[QUOTE_SIGNATURE + 32:QUOTE_SIGNATURE + 64], "big")
    qe_s = int.from_bytes(quote[QE_REPORT_SIGNATURE + 32:QE_REPORT_SIGNATURE + 64], "big")
    be = tls_raw.be32
    forged = [
        ("quote signature r = 0", QUOTE_SIGNATURE, bytes(32), "dcap.quote_signature"),
        ("quote signature s = 0", QUOTE_SIGNATURE + 32, bytes(32), "dcap.quote_signature"),
        ("quote signature r = n", QUOTE_SIGNATURE, be(n), "dcap.quote_signature"),
        ("quote signature s = n", QUOTE_SIGNATURE + 32, be(n), "dcap.quote_signature"),
        ("quote signature all ones", QUOTE_SIGNATURE, b"\xff" * 64, "dcap.quote_signature"),
        ("QE report signature r = 0", QE_REPORT_SIGNATURE, bytes(32), "dcap.qe_report_signature"),
        ("QE report signature s = n", QE_REPORT_SIGNATURE + 32, be(n), "dcap.qe_report_signature"),
    ]
    if r_value + n < 2 ** 256:  # r + n is r mod n: a verifier that reduces instead of refusing accepts it
        forged.append(("quote signature r + n", QUOTE_SIGNATURE, be(r_value + n), "dcap.quote_signature"))
    directory = h.tmpdir("forged")
    args = ["--collateral", collateral, "--now", TDX_NOW]
    failures = []
    for name, offset, data, check_id in forged:
        path = os.path.join(directory, "quote")
        with open(path, "wb") as f:
            f.write(mutated(quote, offset, data))
        r, verdict = verify_json(path, args)
        checks = checks_by_id(verdict)
        later = [c for c in verdict["checks"][list(checks).index(check_id) + 1:] if c["id"].startswith("dcap.")]
        if not (r.rc == 1 and verdict["verdict"] == "INVALID" and checks[check_id]["state"] == "failed"
                and checks[check_id]["detail"] and verdict["dcap"]["verified"] is False
                and all(c["state"] == "not checked" for c in later)):
            failures.append(f"{name}: rc {r.rc}, {verdict['verdict']}, {check_id}: {checks[check_id]}, "
                            f"later: {[(c['id'], c['state']) for c in later]}")
    # (r, n - s) is as valid an ECDSA signature as (r, s): Intel's verifiers accept either.
    for name, offset, s in (("quote", QUOTE_SIGNATURE, s_value), ("QE report", QE_REPORT_SIGNATURE, qe_s)):
        path = os.path.join(directory, "quote")
        with open(path, "wb") as f:
            f.write(mutated(quote, offset + 32, be(n - s)))
        r, verdict = verify_json(path, args)
        if not (r.rc == 0 and verdict["verdict"] == "VALID"):
            failures.append(f"{name} signature with s -> n - s: {r.rc} {verdict['verdict']} {verdict['reason']}")
    harness.expect(not failures, "\n".join(failures))


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag, body):
    return bytes([tag]) + der_length(len(body)) + body


def read_tlv(data, at):
    """(start of contents, end) of the TLV at `at`."""
    first = data[at + 1]
    if first < 0x80:
        return at + 2, at + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[at + 2:at + 2 + count], "big")
    return at + 2 + count, at + 2 + count + length


def der_integer(value):
    return tlv(2, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def pem(der):
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def ra_tls_certificate(directory, quote_path):
    """A self-signed P-256 certificate carrying the quote and an empty event log (dstack's
    extensions 1.3.6.1.4.1.62397.1.1 and .2, each an OCTET STRING inside the extension value)."""
    with open(quote_path, "rb") as f:
        quote = f.read()
    key, config, cert = (os.path.join(directory, name) for name in ("ratls.key", "ratls.cnf", "ratls.pem"))
    with open(config, "w") as f:
        f.write("[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n[dn]\nCN=ratls\n[ext]\n"
                f"1.3.6.1.4.1.62397.1.1=DER:{tlv(4, quote).hex()}\n"
                f"1.3.6.1.4.1.62397.1.2=DER:{tlv(4, b'[]').hex()}\n")
    for step in (["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                 ["openssl", "req", "-x509", "-new", "-key", key, "-config", config, "-days", "2", "-out", cert]):
        r = h.run(step)
        harness.expect(r.rc == 0, f"openssl failed: {r}")
    with open(cert) as f:
        return base64.b64decode("".join(line for line in f.read().splitlines() if not line.startswith("-----")))


def case_forged_certificate_signatures(quote_path, collateral):
    directory = h.tmpdir("ratls")
    der = ra_tls_certificate(directory, quote_path)
    start, _ = read_tlv(der, 0)
    tbs_end = read_tlv(der, start)[1]
    algorithm_end = read_tlv(der, tbs_end)[1]
    bits_start, bits_end = read_tlv(der, algorithm_end)
    signature = der[bits_start + 1:bits_end]
    seq_start, _ = read_tlv(signature, 0)
    r_start, r_end = read_tlv(signature, seq_start)
    s_start, s_end = read_tlv(signature, r_end)
    r_value, s_value = int.from_bytes(signature[r_start:r_end], "big"), int.from_bytes(signature[s_start:s_end], "big")
    n = tls_raw.N

    def signed(signature_der):
        return tlv(0x30, der[start:algorithm_end] + tlv(3, b"\x00" + signature_der))

    def sig(r, s):
        return tlv(0x30, der_integer(r) + der_integer(s))

    cases = [
        ("original", sig(r_value, s_value), "passed"),
        ("s -> n - s", sig(r_value, n - s_value), "passed"),
        ("r = 0", sig(0, s_value), "failed"),
        ("s = 0", sig(r_value, 0), "failed"),
        ("r = n", sig(n, s_value), "failed"),
        ("s = n", sig(r_value, n), "failed"),
        ("r + n", sig(r_value + n, s_value), "failed"),
        ("raw r || s instead of DER", tls_raw.be32(r_value) + tls_raw.be32(s_value), "failed"),
        ("a byte after the two integers", tlv(0x30, der_integer(r_value) + der_integer(s_value) + b"\x00"), "failed"),
        ("empty", b"", "failed"),
    ]
    failures = []
    path = os.path.join(directory, "mutated.pem")
    for name, signature_der, expected in cases:
        with open(path, "w") as f:
            f.write(pem(signed(signature_der)))
        r, verdict = verify_json(path, ["--collateral", collateral])
        check = checks_by_id(verdict).get("ratls.signature")
        if check is None or check["state"] != expected or not check["detail"]:
            failures.append(f"{name}: ratls.signature {check}, expected {expected}")
        if expected == "failed" and (r.rc != 1 or verdict["verdict"] != "INVALID"):
            failures.append(f"{name}: verdict {verdict['verdict']} (exit {r.rc})")
    harness.expect(not failures, "\n".join(failures))


# ---- 4. concurrency and SIGTERM ----

def verify_serve(collateral, threads=4, check_exit=True):
    return h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--collateral", collateral,
                     "--now", TDX_NOW, "--skip-os-image", "--threads", str(threads)],
                    ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name="verify serve", check_exit=check_exit)


def request_bodies(quote_path):
    with open(quote_path, "rb") as f:
        quote = f.read()
    s_value = int.from_bytes(quote[QUOTE_SIGNATURE + 32:QUOTE_SIGNATURE + 64], "big")
    variants = [
        ("good", quote, True),
        ("quote signature r = 0", mutated(quote, QUOTE_SIGNATURE, bytes(32)), False),
        ("high s", mutated(quote, QUOTE_SIGNATURE + 32, tls_raw.be32(tls_raw.N - s_value)), True),
        ("QE report signature r = 0", mutated(quote, QE_REPORT_SIGNATURE, bytes(32)), False),
        ("one bit of the quote signature", mutated(quote, QUOTE_SIGNATURE + 5, bytes([quote[QUOTE_SIGNATURE + 5] ^ 1])), False),
    ]
    return [(name, json.dumps({"quote": q.hex(), "event_log": "[]"}).encode(), verified) for name, q, verified in variants]


def load(port, bodies, seconds, clients=8, stop=None):
    """`clients` threads posting the bodies round-robin; returns (right, wrong, errors)."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    totals = {"right": 0, "wrong": [], "errors": []}
    lock = threading.Lock()

    def client(index):
        connection = None
        i = index
        while time.monotonic() < deadline and not stop.is_set():
            name, body, verified = bodies[i % len(bodies)]
            i += 1
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                connection.request("POST", "/verify", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                with lock:
                    if response.status == 200 and answer["details"]["quote_verified"] is verified:
                        totals["right"] += 1
                    else:
                        totals["wrong"].append((name, response.status, answer.get("reason")))
            except (OSError, http.client.HTTPException, ValueError) as e:
                with lock:
                    totals["errors"].append((name, repr(e)))
                if connection is not None:
                    connection.close()
                connection = None
                if stop.is_set():
                    break
        if connection is not None:
            connection.close()

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 30)
    return totals


def case_parallel_load(collateral, bodies):
    with verify_serve(collateral) as server:
        pid = server.proc.pid
        load(server.address.port, bodies, 2)  # warm-up: thread arenas and caches
        before = rss_kb(pid)
        totals = load(server.address.port, bodies, LOAD_SECONDS)
        after = rss_kb(pid)
        print(f"     {totals['right']} right answers in {LOAD_SECONDS} s from 8 clients, {len(totals['wrong'])} "
              f"wrong, {len(totals['errors'])} errors; RSS {before} kB -> {after} kB")
        harness.expect(totals["right"] >= 100 and not totals["wrong"] and not totals["errors"],
                       f"wrong: {totals['wrong'][:3]}, errors: {totals['errors'][:3]}")
        check_rss_growth(before, after, "under load")


def case_sigterm_under_load(collateral, bodies):
    for trial in range(3):
        with verify_serve(collateral, check_exit=False) as server:  # stopped here, its exit checked here
            stop = threading.Event()
            result = {}
            runner = threading.Thread(target=lambda: result.update(load(server.address.port, bodies, 10, stop=stop)),
                                      daemon=True)
            runner.start()
            time.sleep(0.4 + 0.2 * trial)
            server.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                code = server.proc.wait(timeout=12)
            except subprocess.TimeoutExpired:
                code = "still running"
            took = time.monotonic() - started
            stop.set()
            runner.join(30)
            harness.expect(code == 0, f"trial {trial}: SIGTERM under load: exit {code}\n{server.log_tail()}")
            harness.expect(took < 10, f"trial {trial}: stopping took {took:.1f} s")
            harness.expect(result.get("right", 0) > 0 and not result.get("wrong"),
                           f"trial {trial}: answers before the stop: {result.get('right')} right, "
                           f"wrong {result.get('wrong', [])[:3]}")


# ---- 5. environment ----

HOSTILE_CONFIG = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
alg_section = evp_properties
[provider_sect]
hostile = hostile_sect
[hostile_sect]
module = /nonexistent/hostile.so
activate = 1
[evp_properties]
default_properties = fips=yes
"""


def hostile_environments(directory):
    config, broken = os.path.join(directory, "hostile.cnf"), os.path.join(directory, "broken.cnf")
    with open(config, "w") as f:
        f.write(HOSTILE_CONFIG)
    with open(broken, "w") as f:
        f.write("openssl_conf = [unterminated\n.include /nonexistent\n")
    modules = h.tmpdir("openssl-modules")
    return [
        ("OPENSSL_CONF loading a provider, fips=yes", {"OPENSSL_CONF": config, "OPENSSL_MODULES": modules}),
        ("OPENSSL_CONF malformed", {"OPENSSL_CONF": broken}),
        ("OPENSSL_ia32cap: every CPU feature off", {"OPENSSL_ia32cap": "~0xffffffffffffffff:~0xffffffffffffffff"}),
    ]


def case_environment(quote, collateral, cert, key):
    environments = hostile_environments(h.tmpdir("openssl-env"))
    # The hostile config really changes what OpenSSL does: the openssl CLI cannot make a key under it.
    r = h.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], env={**os.environ, **environments[0][1]})
    harness.expect(r.rc != 0, "the hostile OPENSSL_CONF did not affect the openssl CLI: the test proves nothing")
    args = [quote, "--collateral", collateral, "--now", TDX_NOW, "--json"]
    reference = h.run([h.dstack, "verify", *args])
    harness.expect(reference.rc == 0 and json.loads(reference.out)["verdict"] == "VALID", f"reference: {reference}")
    for name, env in environments:
        r = h.run([h.dstack, "verify", *args], env={**os.environ, **env})
        harness.expect(r.rc == 0 and r.out == reference.out, f"{name}: the verdict differs: {r}")
        with tls_server(cert, key, env) as server:
            for version in ("1.3", "1.2"):
                ok, result = curl_health(server, version)
                harness.expect(ok, f"{name}: TLS {version} with a P-256 signature failed: {result}")


def out_of_time(signum, frame):
    raise SystemExit(f"the test ran past {TIME_LIMIT} s")


def main(harness_):
    global h
    h = harness_
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT)
    try:
        with h.group("TLS server"):
            cert, key = make_certificate(h.tmpdir("tls"))
            with tls_server(cert, key) as server:
                with h.case("TLS 1.3 key shares and TLS 1.2 ECDHE points off P-256 are refused, good ones taken"):
                    case_bad_points(server)
                with h.case("static-ECDH suites are refused: the certificate key only signs"):
                    case_static_ecdh_refused(server)
                with h.case(f"{FLOOD} refused handshakes: the server keeps serving, RSS bounded"):
                    case_flood(server)
                with h.case(f"{HALF_OPEN} half-open handshakes end at the handshake timeout"):
                    case_half_open(server)
                with h.case("P-256 first: our client's key share, our TLS 1.2 server's choice"):
                    case_groups_prefer_p256(h.vector("dcap-qvl/tdx_quote"), server)
        with h.group("evidence"):
            quote = h.vector("dcap-qvl/tdx_quote")
            collateral = h.vector("dcap-qvl/tdx_quote_collateral.json")
            with h.case("our TLS client aborts on a hostile server's bad P-256 key share"):
                case_hostile_server(quote)
            with h.case("quotes with forged P-256 signatures are INVALID at that check; high-s verifies"):
                case_forged_quotes(quote, collateral)
            with h.case("RA-TLS certificates with mutated ECDSA signatures fail their signature check"):
                case_forged_certificate_signatures(quote, collateral)
            bodies = request_bodies(quote)
            with h.case(f"verify serve --threads 4: 8 clients for {LOAD_SECONDS} s, every answer right"):
                case_parallel_load(collateral, bodies)
            with h.case("verify serve: SIGTERM under load exits 0 promptly"):
                case_sigterm_under_load(collateral, bodies)
            with h.case("OPENSSL_CONF, OPENSSL_MODULES, OPENSSL_ia32cap change nothing"):
                cert, key = make_certificate(h.tmpdir("tls-env"))
                case_environment(quote, collateral, cert, key)
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
