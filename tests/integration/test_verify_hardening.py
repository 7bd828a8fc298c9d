#!/usr/bin/env python3
"""Integration test of the hardened `dstack verify` and `verify serve`: the real binary, the
simulator, certificates made by the openssl CLI, and the real server driven by Python's HTTP client.

usage: python3 tests/integration/test_verify_hardening.py BUILD_DIR

Checks: stable check ids in --json and in serve's responses; empty expectations and other empty
values refused as usage errors (exit 2); a debug TD allowed by --allow-debug reported as debug in
the text verdict, --json and the serve API; --os-image-hash reported as the os-image-hash event's
check with the OS image measurement not checked; serve --trust-root marking every response
simulated (invalid unless --accept-simulated); RA-TLS certificates' validity and signatures.
Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard library plus the openssl binary.
Network: 127.0.0.1 only.
"""

import base64
import calendar
import hashlib
import json
import os
import re
import time

import harness  # next to this file

TDX_NOW = "1752919234"
ID_PATTERN = re.compile(r"^(dcap|eventlog|binding|identity|expect|policy|ratls|os_image)\.[a-z0-9_]+$")

h = None  # the Harness, set by main()


def vec(name):
    return h.vector(name)


def run(args, stdin=None):
    r = h.run([h.dstack, "verify"] + args, stdin=stdin, timeout=60)
    return r.rc, r.out, r.err


def must_run(cmd, text=True):
    """A command the cases need the output of (the simulator, openssl): its stdout, or Failure."""
    r = h.run(cmd, text=text, timeout=60)
    h.expect(r.rc == 0, str(r))
    return r.out


def run_json(args):
    rc, out, err = run(args + ["--json"])
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, out + err


def by_id(checks, check_id):
    for check in checks or []:
        if check.get("id") == check_id:
            return check
    return {}


def v1_digest(name, payload):
    return hashlib.sha384((0x08000001).to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()


class Sim:
    """A simulator PKI and collateral, and quotes made with them."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.pki = os.path.join(tmp, "pki")
        must_run([h.dstack, "verify", "sim", "init", self.pki])
        self.root = os.path.join(self.pki, "root.pem")
        self.collateral = os.path.join(tmp, "sim-collateral.json")
        must_run([h.dstack, "verify", "sim", "collateral", self.pki, "-o", self.collateral])
        self.trust = ["--collateral", self.collateral, "--trust-root", self.root]
        self.count = 0

    def quote(self, *args):
        self.count += 1
        path = os.path.join(self.tmp, f"q{self.count}.bin")
        must_run([h.dstack, "verify", "sim", "quote", self.pki, "-o", path] + list(args))
        return path

    def cvm(self, *args):
        """A dstack-shaped CVM: (quote bytes, event log list) with runtime events in RTMR3."""
        events = [("system-preparing", b""), ("app-id", bytes(range(20))), ("compose-hash", b"\x33" * 32),
                  ("instance-id", b"\x11" * 20), ("boot-mr-done", b""), ("os-image-hash", b"\x22" * 32),
                  ("key-provider", b'{"name":"kms","id":"abcd"}'), ("system-ready", b"")]
        rtmr3 = bytes(48)
        for name, payload in events:
            rtmr3 = hashlib.sha384(rtmr3 + v1_digest(name, payload)).digest()
        with open(self.quote("--rtmr3", rtmr3.hex(), *args), "rb") as f:
            quote = f.read()
        log = [{"imr": 3, "event_type": 134217729, "digest": v1_digest(n, p).hex(), "event": n, "event_payload": p.hex()}
               for n, p in events]
        return quote, log

    def getquote_file(self, quote, log):
        self.count += 1
        path = os.path.join(self.tmp, f"getquote{self.count}.json")
        with open(path, "w") as f:
            json.dump({"quote": quote.hex(), "event_log": json.dumps(log)}, f)
        return path


def id_cases():
    rc, verdict, err = run_json(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW,
                                 vec("dcap-qvl/tdx_quote")])
    checks = (verdict or {}).get("checks", [])
    h.check("--json: every check has an id of the documented scheme, and its name, state and detail",
         rc == 0 and checks and all(ID_PATTERN.match(c.get("id", "")) and c.get("name") and c.get("state")
                                    and "detail" in c for c in checks), checks)
    ids = [c.get("id") for c in checks]
    h.check("--json: ids are unique", len(ids) == len(set(ids)), ids)
    h.check("--json: DCAP's quote signature and the TCB policy under their ids",
         by_id(checks, "dcap.quote_signature").get("name") == "quote signature"
         and by_id(checks, "dcap.quote_signature").get("state") == "passed"
         and by_id(checks, "policy.tcb").get("name") == "TCB policy", checks)
    rc, out, err = run(["--collateral", vec("dcap-qvl/sgx_quote_collateral.json"), "--now", "1752919277",
                        vec("dcap-qvl/sgx_quote")])
    h.check("a policy failure still names the flags that accept it (the hint finds the check by id)",
         rc == 1 and "to accept:    --allow-status ConfigurationAndSWHardeningNeeded" in out, out + err)


def empty_value_cases(sim):
    zero_quote = sim.quote()  # report data all zero: an empty --report-data padded to 64 zero bytes matched it
    rc, out, err = run(sim.trust + ["--report-data", "", zero_quote])
    h.check("--report-data '': exit 2, not a passed check", rc == 2 and "--report-data" in err and "empty" in err
         and not out, (rc, out, err))
    rc, out, err = run(sim.trust + ["--report-data", "0x", zero_quote])
    h.check("--report-data 0x (no bytes): exit 2, not an all-zero expectation", rc == 2 and "no bytes given" in err
            and not out, (rc, out, err))
    flags = ["--app-id", "--os-image-hash", "--mrtd", "--rtmr0", "--rtmr1", "--rtmr2", "--compose", "--event-log",
             "--now", "--allow-status", "--allow-advisory"]
    for flag in flags:
        rc, out, err = run(sim.trust + [flag, "", zero_quote])
        h.check(f"{flag} '': exit 2 naming the flag", rc == 2 and flag in err and "empty" in err and not out, (rc, out, err))
    for flag in ["--collateral", "--trust-root"]:
        args = list(sim.trust)
        args[args.index(flag) + 1] = ""
        rc, out, err = run(args + [zero_quote])
        h.check(f"{flag} '': exit 2 naming the flag", rc == 2 and flag in err and "empty" in err, (rc, out, err))
    rc, out, err = run(["--pccs", "", "--cache-dir", os.path.join(sim.tmp, "c"), zero_quote])
    h.check("--pccs '': exit 2", rc == 2 and "--pccs" in err and "empty" in err, (rc, err))
    rc, out, err = run(sim.trust + ["--allow-status", ",", zero_quote])
    h.check("--allow-status ',': exit 2 (names no status)", rc == 2 and "names no TCB status" in err, (rc, err))
    rc, out, err = run(["serve", "--listen", ""])
    h.check("serve --listen '': exit 2", rc == 2 and "--listen" in err, (rc, err))


def debug_cases(sim):
    debug = sim.quote("--debug")
    rc, out, err = run(sim.trust + ["--allow-debug", debug])
    h.check("debug TD with --allow-debug: VALID, the text verdict says debug (allowed by --allow-debug)",
         rc == 0 and "passed       debug mode: debug (allowed by --allow-debug)" in out, out + err)
    h.check("debug TD with --allow-debug: no check claims it is not a debug TD",
         "no debug" not in out and "not a debug" not in out, out)
    rc, verdict, err = run_json(sim.trust + ["--allow-debug", debug])
    checks = (verdict or {}).get("checks", [])
    h.check("debug TD with --allow-debug: --json has policy.debug 'debug (allowed by --allow-debug)'",
         by_id(checks, "policy.debug").get("detail") == "debug (allowed by --allow-debug)"
         and by_id(checks, "dcap.report_attributes").get("detail", "").startswith("debug TD (allowed"), checks)
    rc, out, err = run(sim.trust + ["--allow-debug", sim.quote()])
    h.check("production TD with --allow-debug: 'not a debug TD'", rc == 0 and "passed       debug mode: not a debug TD" in out,
         out + err)


def os_image_cases(sim):
    quote, log = sim.cvm()
    path = sim.getquote_file(quote, log)
    rc, verdict, err = run_json(sim.trust + ["--os-image-hash", "22" * 32, path])
    checks = (verdict or {}).get("checks", [])
    event = by_id(checks, "expect.os_image_hash_event")
    h.check("--os-image-hash: reported as the os-image-hash event's check, passed",
         rc == 0 and event.get("state") == "passed" and "os-image-hash event" in event.get("name", ""), checks)
    measurement = by_id(checks, "os_image.measurement")
    h.check("--os-image-hash: the same verdict says the OS image measurement was not checked",
         measurement.get("state") == "not checked" and "not computed" in measurement.get("detail", ""), checks)
    h.check("--os-image-hash: no check is called 'expected OS image hash' any more",
         all(c.get("name") != "expected OS image hash" for c in checks), checks)
    rc, out, err = run(sim.trust + ["--os-image-hash", "22" * 32, path])
    h.check("--os-image-hash in the text verdict: 'not checked  OS image measurement'",
         rc == 0 and "not checked  OS image measurement:" in out and "passed       expected os-image-hash event" in out,
         out + err)
    rc, out, err = run(sim.trust + ["--os-image-hash", "23" * 32, path])
    h.check("--os-image-hash different from the event: INVALID", rc == 1 and "failed       expected os-image-hash event" in out,
         out + err)


def serve(args, name):
    """One `dstack verify serve` on a free port of 127.0.0.1 (a context manager)."""
    return h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0"] + args,
                    ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name=name)


def post_verify(server, request):
    """POST /verify: the decoded response, or None when it is not a 200."""
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    response = harness.http_request(server.address, "POST", "/verify", body=body,
                                    headers={"Content-Type": "application/json"}, timeout=60)
    if response.status != 200:
        return None
    return response.json()


def serve_cases(sim):
    quote, log = sim.cvm()
    request = {"quote": quote.hex(), "event_log": json.dumps(log)}

    with serve(sim.trust + ["--skip-os-image"], "verify serve --trust-root") as server:
        r = post_verify(server, request)
        h.check("serve --trust-root: the response is simulated and not valid, the reason says why",
                r and r.get("simulated") is True and r["is_valid"] is False and "simulated" in (r["reason"] or "")
                and "--accept-simulated" in r["reason"] and r["details"]["quote_verified"] is True
                and "boot_info" not in r["details"], r)
        checks = (r or {}).get("checks", [])
        h.check("serve: the response lists every check with its id",
                checks and all(ID_PATTERN.match(c.get("id", "")) for c in checks)
                and by_id(checks, "eventlog.rtmr3").get("state") == "passed", checks)
        r = post_verify(server, b"{not json")
        h.check("serve --trust-root: an internal-error response is simulated too",
                r and r.get("simulated") is True and r["is_valid"] is False and r["reason"].startswith("Internal error:")
                and r.get("checks") == [], r)
    stderr = server.log_tail(limit=1 << 20)  # all of it: the warning is among its first lines
    h.check("serve --trust-root: a warning at start says responses are marked simulated",
            "simulated" in stderr and "--trust-root" in stderr, stderr)

    with serve(sim.trust + ["--skip-os-image", "--accept-simulated"], "verify serve --accept-simulated") as server:
        r = post_verify(server, request)
        h.check("serve --trust-root --accept-simulated: valid, still marked simulated",
                r and r["is_valid"] is True and r.get("simulated") is True and r["reason"] is None, r)

    debug_quote, debug_log = sim.cvm("--debug")
    debug_request = {"quote": debug_quote.hex(), "event_log": json.dumps(debug_log)}
    with serve(sim.trust + ["--skip-os-image", "--accept-simulated", "--allow-debug"],
               "verify serve --allow-debug") as server:
        r = post_verify(server, debug_request)
        checks = (r or {}).get("checks", [])
        h.check("serve --allow-debug: a debug TD is valid and reported as 'debug (allowed by --allow-debug)'",
                r and r["is_valid"] is True
                and by_id(checks, "policy.debug").get("detail") == "debug (allowed by --allow-debug)", r)
    with serve(sim.trust + ["--skip-os-image", "--accept-simulated"],
               "verify serve --accept-simulated (debug TD)") as server:
        r = post_verify(server, debug_request)
        h.check("serve without --allow-debug: a debug TD is not valid",
                r and r["is_valid"] is False and "Debug mode is enabled" in (r["reason"] or ""), r)

    with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
        real_request = {"quote": f.read().hex(), "event_log": "[]"}
    with serve(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"],
               "verify serve (Intel's root)") as server:
        r = post_verify(server, real_request)
        h.check("serve with Intel's root: simulated false",
                r and r.get("simulated") is False and r["details"]["quote_verified"] is True, r)

    rc, out, err = run(["serve", "--listen", "127.0.0.1:0", "--collateral", sim.collateral, "--accept-simulated"])
    h.check("serve --accept-simulated without --trust-root: exit 2", rc == 2 and "--accept-simulated" in err
         and "--trust-root" in err, (rc, out, err))
    rc, out, err = run(["--help"])
    h.check("--help documents --accept-simulated", rc == 0 and "--accept-simulated" in out, out)


def der_octet_string(content):
    n = len(content)
    length = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xff]))
    return b"\x04" + length + content


def openssl(*args, text=True):
    return must_run(["openssl"] + list(args), text=text)


def pem_of_der(der):
    body = base64.b64encode(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64)) + \
        "\n-----END CERTIFICATE-----\n"


def der_of_pem(pem):
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def ratls_cases(sim):
    tmp = sim.tmp

    def key(name):
        path = os.path.join(tmp, name)
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)
        return path

    leaf_key = key("leaf.key")
    spki = openssl("pkey", "-in", leaf_key, "-pubout", "-outform", "DER", text=False)
    with open(sim.quote("--report-data", hashlib.sha512(b"ratls-cert:" + spki).hexdigest()), "rb") as f:
        quote = f.read()
    extensions = ["-addext", "1.3.6.1.4.1.62397.1.1=DER:" + der_octet_string(quote).hex(),
                  "-addext", "1.3.6.1.4.1.62397.1.2=DER:" + der_octet_string(b"[]").hex()]

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def read(path):
        with open(path) as f:
            return f.read()

    self_signed = os.path.join(tmp, "self.pem")
    openssl("req", "-x509", "-new", "-key", leaf_key, "-subj", "/CN=ratls.test", "-days", "1", *extensions,
            "-out", self_signed)
    rc, verdict, err = run_json(sim.trust + [self_signed])
    checks = (verdict or {}).get("checks", [])
    h.check("RA-TLS self-signed and valid now: VALID, validity and signature passed",
         rc == 0 and by_id(checks, "ratls.validity").get("state") == "passed"
         and by_id(checks, "ratls.signature").get("detail") == "self-signed"
         and by_id(checks, "binding.certificate_key").get("state") == "passed", checks or err)

    later = str(int(time.time()) + 2 * 86400)  # the certificate's day is over; the simulator's collateral is not
    rc, out, err = run(sim.trust + ["--now", later, self_signed])
    h.check("RA-TLS certificate expired at the verification time: INVALID for that reason alone",
         rc == 1 and "failed       RA-TLS certificate validity: the certificate expired at" in out
         and "reason:       RA-TLS certificate validity" in out and "TCB status:   UpToDate" in out, out + err)
    # The simulator's collateral was issued a minute before it was made, the certificate after it:
    # a few seconds before the certificate's notBefore, only the certificate is not valid yet.
    start = openssl("x509", "-in", self_signed, "-noout", "-startdate").strip().split("=", 1)[1]
    not_before = calendar.timegm(time.strptime(start, "%b %d %H:%M:%S %Y %Z"))
    rc, out, err = run(sim.trust + ["--now", str(not_before - 5), self_signed])
    h.check("RA-TLS certificate not yet valid at the verification time: INVALID for that reason alone",
         rc == 1 and "failed       RA-TLS certificate validity: the certificate is not valid before" in out
         and "reason:       RA-TLS certificate validity" in out and "TCB status:   UpToDate" in out, out + err)

    der = bytearray(der_of_pem(read(self_signed)))
    der[-1] ^= 0x01  # inside the signature
    tampered = write("tampered.pem", pem_of_der(bytes(der)))
    rc, out, err = run(sim.trust + [tampered])
    h.check("RA-TLS certificate with a broken signature: INVALID",
         rc == 1 and "failed       RA-TLS certificate signature: self-signature" in out
         and "passed       certificate key bound to the quote" in out, out + err)

    def ca(name, key_path):
        path = os.path.join(tmp, name)
        openssl("req", "-x509", "-new", "-key", key_path, "-subj", "/O=Test/CN=Test RA-TLS CA", "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-out", path)
        return path

    ca_key = key("ca.key")
    ca_pem = ca("ca.pem", ca_key)
    csr = os.path.join(tmp, "leaf.csr")
    openssl("req", "-new", "-key", leaf_key, "-subj", "/CN=ratls.test", *extensions, "-out", csr)
    issued = os.path.join(tmp, "issued.pem")
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial", "4660", "-days", "1",
            "-copy_extensions", "copyall", "-out", issued)

    chain = write("chain.pem", read(issued) + read(ca_pem))
    rc, out, err = run(sim.trust + [chain])
    h.check("RA-TLS certificate with its issuer in the PEM: VALID, signed by the issuer",
         rc == 0 and "passed       RA-TLS certificate signature: signed by O=Test, CN=Test RA-TLS CA" in out, out + err)
    rc, out, err = run(sim.trust + [issued])
    h.check("RA-TLS certificate issued by a CA the PEM does not carry: INVALID (signature not checkable)",
         rc == 1 and "failed       RA-TLS certificate signature: not self-signed" in out, out + err)
    look_alike = write("look-alike.pem", read(issued) + read(ca("other-ca.pem", key("other-ca.key"))))
    rc, out, err = run(sim.trust + [look_alike])
    h.check("RA-TLS certificate with a look-alike issuer (same name, other key): INVALID",
         rc == 1 and "failed       RA-TLS certificate signature" in out, out + err)


def main(harness_):
    global h
    h = harness_
    with h.group("id_cases"):
        id_cases()
    sim = None
    with h.case("the simulator sets up"):
        sim = Sim(h.tmpdir("sim"))
    if sim is None:  # its FAIL says why; every group below needs it
        return
    for group in (empty_value_cases, debug_cases, os_image_cases, serve_cases, ratls_cases):
        with h.group(group.__name__):  # one broken group must not hide the others' results
            group(sim)


if __name__ == "__main__":
    harness.main(main, needs=["openssl"])
