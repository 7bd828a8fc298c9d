#!/usr/bin/env python3
"""Integration test: every JSON input of the real binary refuses a key given twice.

usage: python3 tests/integration/test_json_inputs.py BUILD_DIR

A JSON object with a key given twice can be read two ways (the first value or the last), so two
readers of one document could see two different documents. Each case takes a real input that the
binary accepts, gives one key twice (often with the same value), and checks that `dstack verify`
(on files) and `dstack verify serve` (POST /verify with curl) refuse it and name the key, while the
unchanged input is still accepted. Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard
library plus the curl binary; loopback only.
"""

import hashlib
import json
import os

import harness  # next to this file

TDX_NOW = "1752919234"

h = None  # the Harness, set by main()


def vec(name):
    return h.vector(name)


def with_member(object_text, key, value_text):
    """The JSON object text with one more member appended: `key` again, if it is there already."""
    body = object_text.rstrip()
    h.expect(body.endswith("}"), f"not a JSON object: {body[-100:]!r}")
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
    r = h.run([h.dstack, "verify"] + args, timeout=60)
    return r.rc, r.out, r.err


def sim(args, what):
    """`dstack verify sim ARGS`, which must succeed: the cases below need what it makes."""
    r = h.run([h.dstack, "verify", "sim"] + args, timeout=60)
    h.expect(r.rc == 0, f"{what}: {r}")


def file_cases(tmp):
    collateral = ["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW]
    with open(vec("dstack/verifier/tdx-lite-getquote.json")) as f:
        getquote = json.load(f)

    rc, out, err = verify(collateral + [write(tmp, "getquote.json", json.dumps(getquote))])
    h.check("GetQuote JSON as it is: read and judged (exit 1: another platform's collateral)",
            rc == 1 and "input:        GetQuote response" in out, out + err)
    rc, out, err = verify(collateral + [write(tmp, "getquote-twice.json", with_member(json.dumps(getquote), "quote", '"00"'))])
    h.check("GetQuote JSON with 'quote' twice: refused (exit 2), naming the key",
            rc == 2 and "evidence JSON: $: duplicate key 'quote'" in err and not out, out + err)

    events = json.loads(getquote["event_log"])
    log_twice = "[" + twice(events[0], "digest") + "," + ",".join(json.dumps(e) for e in events[1:]) + "]"
    rc, out, err = verify(collateral + [write(tmp, "getquote-log-twice.json", json.dumps(dict(getquote, event_log=log_twice)))])
    h.check("GetQuote JSON whose event log gives 'digest' twice in its first event: refused (exit 2), naming the path",
            rc == 2 and "$.event_log: $[0]: duplicate key 'digest'" in err, out + err)
    as_array = json.dumps(dict(getquote, event_log="@"))
    as_array = as_array.replace('"@"', log_twice)
    rc, out, err = verify(collateral + [write(tmp, "getquote-array-twice.json", as_array)])
    h.check("GetQuote JSON with the event log as an array, 'digest' twice: refused, naming the path",
            rc == 2 and "evidence JSON: $.event_log[0]: duplicate key 'digest'" in err, out + err)

    with open(vec("dstack/verifier/tdx-lite-attestation.json")) as f:
        attestation = json.load(f)
    rc, out, err = verify(collateral + [write(tmp, "attestation.json", json.dumps(attestation))])
    h.check("{\"attestation\"} as it is: read (exit 1)", rc == 1 and "input:        V0 attestation (JSON)" in out,
            out + err)
    rc, out, err = verify(collateral + [write(tmp, "attestation-twice.json", twice(attestation, "attestation"))])
    h.check("{\"attestation\"} given twice (same value): refused (exit 2)",
            rc == 2 and "duplicate key 'attestation'" in err, out + err)

    # --event-log FILE: a JSON array of events next to a quote that carries none.
    quote = vec("dcap-qvl/quote-from-tappd.hex")
    rc, out, err = verify(collateral + ["--event-log", write(tmp, "events.json", json.dumps(events)), quote])
    h.check("--event-log JSON as it is: read (exit 1, it is another machine's log)", rc == 1 and "checks:" in out,
            out + err)
    rc, out, err = verify(collateral + ["--event-log", write(tmp, "events-twice.json", log_twice), quote])
    h.check("--event-log JSON with 'digest' twice: refused (exit 2), naming the path",
            rc == 2 and "$[0]: duplicate key 'digest'" in err, out + err)

    with open(vec("dcap-qvl/tdx_quote_collateral.json")) as f:
        collateral_json = json.load(f)
    nested = with_member(json.dumps(collateral_json), "extra", '{"note":1,"note":2}')
    rc, out, err = verify(["--collateral", write(tmp, "collateral-twice.json", nested), "--now", TDX_NOW,
                           vec("dcap-qvl/tdx_quote")])
    h.check("collateral with a key twice inside a member it does not read: refused (exit 2)",
            rc == 2 and "collateral: $.extra: duplicate key 'note'" in err, out + err)


def serve(args, name):
    """One `dstack verify serve` on a free port of 127.0.0.1 (a context manager)."""
    return h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0"] + args,
                    ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name=name)


def post_verify(server, tmp, body_text):
    """POST /verify with curl: (the decoded response, or None when it is not a 200 JSON; what came back)."""
    status, body = h.curl(server.url + "/verify", data_file=write(tmp, "body.json", body_text),
                          headers=["Content-Type: application/json"], timeout=60)
    seen = f"HTTP {status}: {body[:2000]}"
    if status != 200:
        return None, seen
    try:
        return json.loads(body), seen
    except ValueError:
        return None, f"not JSON: {seen}"


def refused(response, needle):
    return (response is not None and response["is_valid"] is False and response["reason"].startswith("Internal error:")
            and needle in response["reason"] and response["details"]["quote_verified"] is False)


def serve_cases(tmp):
    with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
        request = {"quote": f.read().hex(), "event_log": "[]"}
    with serve(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"],
               "verify serve (real TDX collateral)") as server:
        r, seen = post_verify(server, tmp, json.dumps(request))
        h.check("serve: the real TDX quote as it is: quote verified", r and r["details"]["quote_verified"] is True, seen)
        # The first 'quote' is the real one, so a reader that keeps the first would verify it.
        r, seen = post_verify(server, tmp, with_member(json.dumps(request), "quote", '"00"'))
        h.check("serve: 'quote' twice: refused, naming the key",
                refused(r, "invalid request: $: duplicate key 'quote'"), seen)
        r, seen = post_verify(server, tmp, with_member(json.dumps(request), "extra", '[{"a":1,"a":1}]'))
        h.check("serve: a key twice inside an unknown field: refused, naming the path",
                refused(r, "invalid request: $.extra[0]: duplicate key 'a'"), seen)
        event = {"imr": 0, "event_type": 1, "digest": "", "event": "", "event_payload": ""}
        r, seen = post_verify(server, tmp, json.dumps(dict(request, event_log="[" + twice(event, "imr") + "]")))
        h.check("serve: an event log that gives 'imr' twice: refused, naming the path",
                refused(r, "Failed to parse event log: $[0]: duplicate key 'imr'"), seen)


def key_provider_cases(tmp):
    """A simulated CVM whose key-provider event payload is JSON: with a key twice it is no key provider."""
    pki = os.path.join(tmp, "pki")
    sim(["init", pki], "sim init")
    collateral = os.path.join(tmp, "sim-collateral.json")
    sim(["collateral", pki, "-o", collateral], "sim collateral")

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
        sim(["quote", pki, "-o", quote, "--rtmr3", rtmr3.hex()], "sim quote")
        with open(quote, "rb") as f:
            return json.dumps({"quote": f.read().hex(), "event_log": json.dumps(log)})

    with serve(["--collateral", collateral, "--trust-root", os.path.join(pki, "root.pem"), "--skip-os-image"],
               "verify serve (simulator)") as server:
        r, seen = post_verify(server, tmp, request_for(b'{"name":"kms","id":"abcd"}'))
        h.check("serve: sim CVM key-provider payload as it is: key_provider read",
                r and r["details"]["event_log_verified"] is True
                and r["details"]["key_provider"] == {"name": "kms", "id": "abcd"}, seen)
        r, seen = post_verify(server, tmp, request_for(b'{"name":"kms","id":"abcd","id":"ef01"}'))
        h.check("serve: key-provider payload with 'id' twice: no key provider (null), the event log still verified",
                r and r["details"]["event_log_verified"] is True and r["details"]["key_provider"] is None, seen)


def main(harness_):
    global h
    h = harness_
    for group in (file_cases, serve_cases, key_provider_cases):
        with h.group(group.__name__):  # one broken group must not hide the others' results
            group(h.tmpdir(group.__name__))


if __name__ == "__main__":
    harness.main(main, needs=["curl"])
