#!/usr/bin/env python3
"""Integration test: every JSON input of the real binary refuses a key given twice.

usage: python3 tests/integration/test_json_inputs.py DSTACK_BINARY

A JSON object with a key given twice can be read two ways (the first value or the last), so two
readers of one document could see two different documents. Each case takes a real input that the
binary accepts, gives one key twice (often with the same value), and checks that `dstack verify`
(on files) and `dstack verify serve` (POST /verify with curl) refuse it and name the key, while the
unchanged input is still accepted. Reads the vectors from $DSTACK_VECTORS (default
../shared/vectors next to the project). Python 3 standard library plus the curl binary.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("DSTACK_VECTORS") or os.path.join(HERE, "..", "..", "..", "shared", "vectors")

TDX_NOW = "1752919234"

results = {"passed": 0, "failed": 0}


def vec(name):
    return os.path.join(VECTORS, name)


def case(name, condition, detail=""):
    if condition:
        results["passed"] += 1
        print(f"ok   {name}")
    else:
        results["failed"] += 1
        print(f"FAIL {name} {str(detail)[:2000]}")


def with_member(object_text, key, value_text):
    """The JSON object text with one more member appended: `key` again, if it is there already."""
    body = object_text.rstrip()
    assert body.endswith("}")
    return body[:-1] + "," + json.dumps(key) + ":" + value_text + "}"


def twice(obj, key):
    """`obj` as JSON text with `key` given a second time, with the same value."""
    return with_member(json.dumps(obj), key, json.dumps(obj[key]))


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def verify(args):
    proc = subprocess.run([DSTACK, "verify"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def file_cases(tmp):
    collateral = ["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW]
    with open(vec("dstack/verifier/tdx-lite-getquote.json")) as f:
        getquote = json.load(f)

    rc, out, err = verify(collateral + [write(tmp, "getquote.json", json.dumps(getquote))])
    case("GetQuote JSON as it is: read and judged (exit 1: another platform's collateral)",
         rc == 1 and "input:        GetQuote response" in out, out + err)
    rc, out, err = verify(collateral + [write(tmp, "getquote-twice.json", with_member(json.dumps(getquote), "quote", '"00"'))])
    case("GetQuote JSON with 'quote' twice: refused (exit 2), naming the key",
         rc == 2 and "evidence JSON: $: duplicate key 'quote'" in err and not out, out + err)

    events = json.loads(getquote["event_log"])
    log_twice = "[" + twice(events[0], "digest") + "," + ",".join(json.dumps(e) for e in events[1:]) + "]"
    rc, out, err = verify(collateral + [write(tmp, "getquote-log-twice.json", json.dumps(dict(getquote, event_log=log_twice)))])
    case("GetQuote JSON whose event log gives 'digest' twice in its first event: refused (exit 2), naming the path",
         rc == 2 and "$.event_log: $[0]: duplicate key 'digest'" in err, out + err)
    as_array = json.dumps(dict(getquote, event_log="@"))
    as_array = as_array.replace('"@"', log_twice)
    rc, out, err = verify(collateral + [write(tmp, "getquote-array-twice.json", as_array)])
    case("GetQuote JSON with the event log as an array, 'digest' twice: refused, naming the path",
         rc == 2 and "evidence JSON: $.event_log[0]: duplicate key 'digest'" in err, out + err)

    with open(vec("dstack/verifier/tdx-lite-attestation.json")) as f:
        attestation = json.load(f)
    rc, out, err = verify(collateral + [write(tmp, "attestation.json", json.dumps(attestation))])
    case("{\"attestation\"} as it is: read (exit 1)", rc == 1 and "input:        V0 attestation (JSON)" in out, out + err)
    rc, out, err = verify(collateral + [write(tmp, "attestation-twice.json", twice(attestation, "attestation"))])
    case("{\"attestation\"} given twice (same value): refused (exit 2)",
         rc == 2 and "duplicate key 'attestation'" in err, out + err)

    # --event-log FILE: a JSON array of events next to a quote that carries none.
    quote = vec("dcap-qvl/quote-from-tappd.hex")
    rc, out, err = verify(collateral + ["--event-log", write(tmp, "events.json", json.dumps(events)), quote])
    case("--event-log JSON as it is: read (exit 1, it is another machine's log)", rc == 1 and "checks:" in out, out + err)
    rc, out, err = verify(collateral + ["--event-log", write(tmp, "events-twice.json", log_twice), quote])
    case("--event-log JSON with 'digest' twice: refused (exit 2), naming the path",
         rc == 2 and "$[0]: duplicate key 'digest'" in err, out + err)

    with open(vec("dcap-qvl/tdx_quote_collateral.json")) as f:
        collateral_json = json.load(f)
    nested = with_member(json.dumps(collateral_json), "extra", '{"note":1,"note":2}')
    rc, out, err = verify(["--collateral", write(tmp, "collateral-twice.json", nested), "--now", TDX_NOW, vec("dcap-qvl/tdx_quote")])
    case("collateral with a key twice inside a member it does not read: refused (exit 2)",
         rc == 2 and "collateral: $.extra: duplicate key 'note'" in err, out + err)


class Server:
    """One `dstack verify serve` process on a free port of 127.0.0.1."""

    def __init__(self, args):
        self.proc = subprocess.Popen([DSTACK, "verify", "serve", "--listen", "127.0.0.1:0"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode(errors="replace")
        match = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def verify(self, tmp, body_text):
        """POST /verify with curl; the decoded response, or None when not a 200 JSON."""
        path = write(tmp, "body.json", body_text)
        proc = subprocess.run(["curl", "-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}",
                               "-H", "Content-Type: application/json", "--data-binary", "@" + path, self.url + "/verify"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        body, _, status = proc.stdout.decode(errors="replace").rpartition("\n")
        if status != "200":
            print(f"     HTTP {status}: {body[:500]} {proc.stderr.decode(errors='replace')}")
            return None
        try:
            return json.loads(body)
        except ValueError:
            print(f"     not JSON: {body[:500]}")
            return None


def refused(response, needle):
    return (response is not None and response["is_valid"] is False and response["reason"].startswith("Internal error:")
            and needle in response["reason"] and response["details"]["quote_verified"] is False)


def serve_cases(tmp):
    with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
        request = {"quote": f.read().hex(), "event_log": "[]"}
    server = Server(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"])
    try:
        r = server.verify(tmp, json.dumps(request))
        case("serve: the real TDX quote as it is: quote verified", r and r["details"]["quote_verified"] is True, r)
        # The first 'quote' is the real one, so a reader that keeps the first would verify it.
        r = server.verify(tmp, with_member(json.dumps(request), "quote", '"00"'))
        case("serve: 'quote' twice: refused, naming the key",
             refused(r, "invalid request: $: duplicate key 'quote'"), r)
        r = server.verify(tmp, with_member(json.dumps(request), "extra", '[{"a":1,"a":1}]'))
        case("serve: a key twice inside an unknown field: refused, naming the path",
             refused(r, "invalid request: $.extra[0]: duplicate key 'a'"), r)
        event = {"imr": 0, "event_type": 1, "digest": "", "event": "", "event_payload": ""}
        r = server.verify(tmp, json.dumps(dict(request, event_log="[" + twice(event, "imr") + "]")))
        case("serve: an event log that gives 'imr' twice: refused, naming the path",
             refused(r, "Failed to parse event log: $[0]: duplicate key 'imr'"), r)
    finally:
        server.stop()


def key_provider_cases(tmp):
    """A simulated CVM whose key-provider event payload is JSON: with a key twice it is no key provider."""
    pki = os.path.join(tmp, "pki")
    subprocess.run([DSTACK, "verify", "sim", "init", pki], check=True, stdout=subprocess.DEVNULL, timeout=60)
    collateral = os.path.join(tmp, "sim-collateral.json")
    subprocess.run([DSTACK, "verify", "sim", "collateral", pki, "-o", collateral], check=True, stdout=subprocess.DEVNULL,
                   timeout=60)

    def request_for(key_provider_payload):
        events = [("system-preparing", b""), ("app-id", bytes(range(20))), ("compose-hash", b"\x33" * 32),
                  ("instance-id", b"\x11" * 20), ("boot-mr-done", b""), ("os-image-hash", b"\x22" * 32),
                  ("key-provider", key_provider_payload), ("system-ready", b"")]
        rtmr3 = bytes(48)
        log = []
        for name, payload in events:
            digest = hashlib.sha384((0x08000001).to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()
            rtmr3 = hashlib.sha384(rtmr3 + digest).digest()
            log.append({"imr": 3, "event_type": 0x08000001, "digest": digest.hex(), "event": name,
                        "event_payload": payload.hex()})
        quote = os.path.join(tmp, "sim-quote.bin")
        subprocess.run([DSTACK, "verify", "sim", "quote", pki, "-o", quote, "--rtmr3", rtmr3.hex()], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        with open(quote, "rb") as f:
            return json.dumps({"quote": f.read().hex(), "event_log": json.dumps(log)})

    server = Server(["--collateral", collateral, "--trust-root", os.path.join(pki, "root.pem"), "--skip-os-image"])
    try:
        r = server.verify(tmp, request_for(b'{"name":"kms","id":"abcd"}'))
        case("serve: sim CVM key-provider payload as it is: key_provider read",
             r and r["details"]["event_log_verified"] is True and r["details"]["key_provider"] == {"name": "kms", "id": "abcd"}, r)
        r = server.verify(tmp, request_for(b'{"name":"kms","id":"abcd","id":"ef01"}'))
        case("serve: key-provider payload with 'id' twice: no key provider (null), the event log still verified",
             r and r["details"]["event_log_verified"] is True and r["details"]["key_provider"] is None, r)
    finally:
        server.stop()


def main():
    global DSTACK
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    DSTACK = os.path.abspath(sys.argv[1])
    if os.path.isdir(DSTACK):  # scripts/test passes the build directory
        DSTACK = os.path.join(DSTACK, "dstack")
    if not os.path.exists(vec("dstack/verifier/tdx-lite-getquote.json")) or shutil.which("curl") is None:
        print(f"*** vectors missing at {VECTORS} (set DSTACK_VECTORS) or no curl ***")
        print("test_json_inputs: 0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for group in (file_cases, serve_cases, key_provider_cases):
            try:
                group(tmp)
            except Exception as e:  # one broken group must not hide the others' results
                case(f"{group.__name__} ran to the end", False, repr(e))
    print(f"test_json_inputs: {results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
