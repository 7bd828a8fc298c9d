#!/usr/bin/env python3
"""Integration test of the hardened `dstack verify` and `verify serve`: the real binary, the
simulator, certificates made by the openssl CLI, and the real server driven by Python's HTTP client.

usage: python3 tests/integration/test_verify_hardening.py DSTACK_BINARY

Checks: stable check ids in --json and in serve's responses; empty expectations and other empty
values refused as usage errors (exit 2); a debug TD allowed by --allow-debug reported as debug in
the text verdict, --json and the serve API; --os-image-hash reported as the os-image-hash event's
check with the OS image measurement not checked; serve --trust-root marking every response
simulated (invalid unless --accept-simulated); RA-TLS certificates' validity and signatures.
Reads the vectors from $DSTACK_VECTORS (default ../shared/vectors next to the project). Python 3
standard library plus the openssl binary. Network: 127.0.0.1 only.
"""

import base64
import calendar
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("DSTACK_VECTORS") or os.path.join(HERE, "..", "..", "..", "shared", "vectors")
TDX_NOW = "1752919234"
ID_PATTERN = re.compile(r"^(dcap|eventlog|binding|identity|expect|policy|ratls|os_image)\.[a-z0-9_]+$")

results = {"passed": 0, "failed": 0}
DSTACK = None


def vec(name):
    return os.path.join(VECTORS, name)


def case(name, condition, detail=""):
    if condition:
        results["passed"] += 1
        print(f"ok   {name}")
    else:
        results["failed"] += 1
        print(f"FAIL {name} {str(detail)[:2000]}")


def run(args, stdin=None):
    proc = subprocess.run([DSTACK, "verify"] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


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
        subprocess.run([DSTACK, "verify", "sim", "init", self.pki], check=True, stdout=subprocess.DEVNULL)
        self.root = os.path.join(self.pki, "root.pem")
        self.collateral = os.path.join(tmp, "sim-collateral.json")
        subprocess.run([DSTACK, "verify", "sim", "collateral", self.pki, "-o", self.collateral], check=True,
                       stdout=subprocess.DEVNULL)
        self.trust = ["--collateral", self.collateral, "--trust-root", self.root]
        self.count = 0

    def quote(self, *args):
        self.count += 1
        path = os.path.join(self.tmp, f"q{self.count}.bin")
        subprocess.run([DSTACK, "verify", "sim", "quote", self.pki, "-o", path] + list(args), check=True,
                       stdout=subprocess.DEVNULL)
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
    case("--json: every check has an id of the documented scheme, and its name, state and detail",
         rc == 0 and checks and all(ID_PATTERN.match(c.get("id", "")) and c.get("name") and c.get("state")
                                    and "detail" in c for c in checks), checks)
    ids = [c.get("id") for c in checks]
    case("--json: ids are unique", len(ids) == len(set(ids)), ids)
    case("--json: DCAP's quote signature and the TCB policy under their ids",
         by_id(checks, "dcap.quote_signature").get("name") == "quote signature"
         and by_id(checks, "dcap.quote_signature").get("state") == "passed"
         and by_id(checks, "policy.tcb").get("name") == "TCB policy", checks)
    rc, out, err = run(["--collateral", vec("dcap-qvl/sgx_quote_collateral.json"), "--now", "1752919277",
                        vec("dcap-qvl/sgx_quote")])
    case("a policy failure still names the flags that accept it (the hint finds the check by id)",
         rc == 1 and "to accept:    --allow-status ConfigurationAndSWHardeningNeeded" in out, out + err)


def empty_value_cases(sim):
    zero_quote = sim.quote()  # report data all zero: an empty --report-data padded to 64 zero bytes matched it
    rc, out, err = run(sim.trust + ["--report-data", "", zero_quote])
    case("--report-data '': exit 2, not a passed check", rc == 2 and "--report-data" in err and "empty" in err
         and not out, (rc, out, err))
    flags = ["--app-id", "--os-image-hash", "--mrtd", "--rtmr0", "--rtmr1", "--rtmr2", "--compose", "--event-log",
             "--now", "--allow-status", "--allow-advisory"]
    for flag in flags:
        rc, out, err = run(sim.trust + [flag, "", zero_quote])
        case(f"{flag} '': exit 2 naming the flag", rc == 2 and flag in err and "empty" in err and not out, (rc, out, err))
    for flag in ["--collateral", "--trust-root"]:
        args = list(sim.trust)
        args[args.index(flag) + 1] = ""
        rc, out, err = run(args + [zero_quote])
        case(f"{flag} '': exit 2 naming the flag", rc == 2 and flag in err and "empty" in err, (rc, out, err))
    rc, out, err = run(["--pccs", "", "--cache-dir", os.path.join(sim.tmp, "c"), zero_quote])
    case("--pccs '': exit 2", rc == 2 and "--pccs" in err and "empty" in err, (rc, err))
    rc, out, err = run(sim.trust + ["--allow-status", ",", zero_quote])
    case("--allow-status ',': exit 2 (names no status)", rc == 2 and "names no TCB status" in err, (rc, err))
    rc, out, err = run(["serve", "--listen", ""])
    case("serve --listen '': exit 2", rc == 2 and "--listen" in err, (rc, err))


def debug_cases(sim):
    debug = sim.quote("--debug")
    rc, out, err = run(sim.trust + ["--allow-debug", debug])
    case("debug TD with --allow-debug: VALID, the text verdict says debug (allowed by --allow-debug)",
         rc == 0 and "passed       debug mode: debug (allowed by --allow-debug)" in out, out + err)
    case("debug TD with --allow-debug: no check claims it is not a debug TD",
         "no debug" not in out and "not a debug" not in out, out)
    rc, verdict, err = run_json(sim.trust + ["--allow-debug", debug])
    checks = (verdict or {}).get("checks", [])
    case("debug TD with --allow-debug: --json has policy.debug 'debug (allowed by --allow-debug)'",
         by_id(checks, "policy.debug").get("detail") == "debug (allowed by --allow-debug)"
         and by_id(checks, "dcap.report_attributes").get("detail", "").startswith("debug TD (allowed"), checks)
    rc, out, err = run(sim.trust + ["--allow-debug", sim.quote()])
    case("production TD with --allow-debug: 'not a debug TD'", rc == 0 and "passed       debug mode: not a debug TD" in out,
         out + err)


def os_image_cases(sim):
    quote, log = sim.cvm()
    path = sim.getquote_file(quote, log)
    rc, verdict, err = run_json(sim.trust + ["--os-image-hash", "22" * 32, path])
    checks = (verdict or {}).get("checks", [])
    event = by_id(checks, "expect.os_image_hash_event")
    case("--os-image-hash: reported as the os-image-hash event's check, passed",
         rc == 0 and event.get("state") == "passed" and "os-image-hash event" in event.get("name", ""), checks)
    measurement = by_id(checks, "os_image.measurement")
    case("--os-image-hash: the same verdict says the OS image measurement was not checked",
         measurement.get("state") == "not checked" and "not computed" in measurement.get("detail", ""), checks)
    case("--os-image-hash: no check is called 'expected OS image hash' any more",
         all(c.get("name") != "expected OS image hash" for c in checks), checks)
    rc, out, err = run(sim.trust + ["--os-image-hash", "22" * 32, path])
    case("--os-image-hash in the text verdict: 'not checked  OS image measurement'",
         rc == 0 and "not checked  OS image measurement:" in out and "passed       expected os-image-hash event" in out,
         out + err)
    rc, out, err = run(sim.trust + ["--os-image-hash", "23" * 32, path])
    case("--os-image-hash different from the event: INVALID", rc == 1 and "failed       expected os-image-hash event" in out,
         out + err)


class Server:
    """One `dstack verify serve` process on a free port of 127.0.0.1."""

    def __init__(self, args):
        self.proc = subprocess.Popen([DSTACK, "verify", "serve", "--listen", "127.0.0.1:0"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode(errors="replace")
        match = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read().decode(errors='replace')}")
        self.port = int(match.group(1))
        self.stderr = ""

    def verify(self, request):
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", "/verify", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            text = response.read()
            if response.status != 200:
                return None
            return json.loads(text)
        finally:
            connection.close()

    def stop(self):
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err.decode(errors="replace")


def serve_cases(sim):
    quote, log = sim.cvm()
    request = {"quote": quote.hex(), "event_log": json.dumps(log)}

    server = Server(sim.trust + ["--skip-os-image"])
    try:
        r = server.verify(request)
        case("serve --trust-root: the response is simulated and not valid, the reason says why",
             r and r.get("simulated") is True and r["is_valid"] is False and "simulated" in (r["reason"] or "")
             and "--accept-simulated" in r["reason"] and r["details"]["quote_verified"] is True
             and "boot_info" not in r["details"], r)
        checks = (r or {}).get("checks", [])
        case("serve: the response lists every check with its id",
             checks and all(ID_PATTERN.match(c.get("id", "")) for c in checks)
             and by_id(checks, "eventlog.rtmr3").get("state") == "passed", checks)
        r = server.verify(b"{not json")
        case("serve --trust-root: an internal-error response is simulated too",
             r and r.get("simulated") is True and r["is_valid"] is False and r["reason"].startswith("Internal error:")
             and r.get("checks") == [], r)
    finally:
        server.stop()
    case("serve --trust-root: a warning at start says responses are marked simulated",
         "simulated" in server.stderr and "--trust-root" in server.stderr, server.stderr)

    server = Server(sim.trust + ["--skip-os-image", "--accept-simulated"])
    try:
        r = server.verify(request)
        case("serve --trust-root --accept-simulated: valid, still marked simulated",
             r and r["is_valid"] is True and r.get("simulated") is True and r["reason"] is None, r)
    finally:
        server.stop()

    debug_quote, debug_log = sim.cvm("--debug")
    debug_request = {"quote": debug_quote.hex(), "event_log": json.dumps(debug_log)}
    server = Server(sim.trust + ["--skip-os-image", "--accept-simulated", "--allow-debug"])
    try:
        r = server.verify(debug_request)
        checks = (r or {}).get("checks", [])
        case("serve --allow-debug: a debug TD is valid and reported as 'debug (allowed by --allow-debug)'",
             r and r["is_valid"] is True and by_id(checks, "policy.debug").get("detail") == "debug (allowed by --allow-debug)",
             r)
    finally:
        server.stop()
    server = Server(sim.trust + ["--skip-os-image", "--accept-simulated"])
    try:
        r = server.verify(debug_request)
        case("serve without --allow-debug: a debug TD is not valid",
             r and r["is_valid"] is False and "Debug mode is enabled" in (r["reason"] or ""), r)
    finally:
        server.stop()

    server = Server(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"])
    try:
        with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
            r = server.verify({"quote": f.read().hex(), "event_log": "[]"})
        case("serve with Intel's root: simulated false",
             r and r.get("simulated") is False and r["details"]["quote_verified"] is True, r)
    finally:
        server.stop()

    rc, out, err = run(["serve", "--listen", "127.0.0.1:0", "--collateral", sim.collateral, "--accept-simulated"])
    case("serve --accept-simulated without --trust-root: exit 2", rc == 2 and "--accept-simulated" in err
         and "--trust-root" in err, (rc, out, err))
    rc, out, err = run(["--help"])
    case("--help documents --accept-simulated", rc == 0 and "--accept-simulated" in out, out)


def der_octet_string(content):
    n = len(content)
    length = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xff]))
    return b"\x04" + length + content


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


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
    spki = subprocess.run(["openssl", "pkey", "-in", leaf_key, "-pubout", "-outform", "DER"], check=True,
                          capture_output=True).stdout
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
    case("RA-TLS self-signed and valid now: VALID, validity and signature passed",
         rc == 0 and by_id(checks, "ratls.validity").get("state") == "passed"
         and by_id(checks, "ratls.signature").get("detail") == "self-signed"
         and by_id(checks, "binding.certificate_key").get("state") == "passed", checks or err)

    later = str(int(time.time()) + 2 * 86400)  # the certificate's day is over; the simulator's collateral is not
    rc, out, err = run(sim.trust + ["--now", later, self_signed])
    case("RA-TLS certificate expired at the verification time: INVALID for that reason alone",
         rc == 1 and "failed       RA-TLS certificate validity: the certificate expired at" in out
         and "reason:       RA-TLS certificate validity" in out and "TCB status:   UpToDate" in out, out + err)
    # The simulator's collateral was issued a minute before it was made, the certificate after it:
    # a few seconds before the certificate's notBefore, only the certificate is not valid yet.
    start = subprocess.run(["openssl", "x509", "-in", self_signed, "-noout", "-startdate"], check=True,
                           capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    not_before = calendar.timegm(time.strptime(start, "%b %d %H:%M:%S %Y %Z"))
    rc, out, err = run(sim.trust + ["--now", str(not_before - 5), self_signed])
    case("RA-TLS certificate not yet valid at the verification time: INVALID for that reason alone",
         rc == 1 and "failed       RA-TLS certificate validity: the certificate is not valid before" in out
         and "reason:       RA-TLS certificate validity" in out and "TCB status:   UpToDate" in out, out + err)

    der = bytearray(der_of_pem(read(self_signed)))
    der[-1] ^= 0x01  # inside the signature
    tampered = write("tampered.pem", pem_of_der(bytes(der)))
    rc, out, err = run(sim.trust + [tampered])
    case("RA-TLS certificate with a broken signature: INVALID",
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
    case("RA-TLS certificate with its issuer in the PEM: VALID, signed by the issuer",
         rc == 0 and "passed       RA-TLS certificate signature: signed by O=Test, CN=Test RA-TLS CA" in out, out + err)
    rc, out, err = run(sim.trust + [issued])
    case("RA-TLS certificate issued by a CA the PEM does not carry: INVALID (signature not checkable)",
         rc == 1 and "failed       RA-TLS certificate signature: not self-signed" in out, out + err)
    look_alike = write("look-alike.pem", read(issued) + read(ca("other-ca.pem", key("other-ca.key"))))
    rc, out, err = run(sim.trust + [look_alike])
    case("RA-TLS certificate with a look-alike issuer (same name, other key): INVALID",
         rc == 1 and "failed       RA-TLS certificate signature" in out, out + err)


def main():
    global DSTACK
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    DSTACK = os.path.abspath(sys.argv[1])
    if os.path.isdir(DSTACK):  # scripts/test passes the build directory
        DSTACK = os.path.join(DSTACK, "dstack")
    if not os.path.exists(vec("dcap-qvl/tdx_quote")) or shutil.which("openssl") is None:
        print(f"*** vectors missing at {VECTORS} (set DSTACK_VECTORS) or no openssl ***")
        print("test_verify_hardening: 0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        groups = [("id_cases", lambda sim: id_cases()), ("empty_value_cases", empty_value_cases),
                  ("debug_cases", debug_cases), ("os_image_cases", os_image_cases), ("serve_cases", serve_cases),
                  ("ratls_cases", ratls_cases)]
        sim = None
        try:
            sim = Sim(tmp)
        except Exception as e:
            case("the simulator sets up", False, repr(e))
        for name, group in groups:
            if sim is None:
                break
            try:
                group(sim)
            except Exception as e:  # one broken group must not hide the others' results
                case(f"{name} ran to the end", False, repr(e))
    print(f"test_verify_hardening: {results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
