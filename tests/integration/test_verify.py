#!/usr/bin/env python3
"""Integration test of `dstack verify`: the real binary on the real vectors and on the simulator.

usage: python3 tests/integration/test_verify.py BUILD_DIR

Checks verdicts, exit codes (0 valid, 1 invalid, 2 usage / unreadable input), the text and JSON
outputs, every input form, the strict policy and its relaxations, expectations, the simulated TEE
from the command line, and collateral from a PCCS (pccs_fixture.py serving the vectors' collateral).
Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard library plus the openssl CLI.
"""

import hashlib
import json
import os

import harness  # next to this file
from pccs_fixture import Pccs  # next to this file

TDX_NOW = "1752919234"
SGX_NOW = "1752919277"
OUTDATED_NOW = "1774003274"

h = None  # the Harness, set by main()


def vec(name):
    return h.vector(name)


def run(args, stdin=None):
    r = h.run([h.dstack, "verify"] + args, stdin=stdin, timeout=60)
    return r.rc, r.out, r.err


def run_json(args):
    rc, out, err = run(args + ["--json"])
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, out + err


def openssl(args):
    r = h.run(["openssl"] + args, text=False)
    h.expect(r.rc == 0, f"openssl failed: {r}")
    return r.out


def msgpack(value):
    """The MessagePack subset a V1 attestation uses, smallest encodings (as rmp writes them):
    dict -> map, str -> str, bytes -> bin, list -> array, int -> uint."""
    def header(n, fix, fix_max, m8, m16, m32):
        if fix is not None and n <= fix_max:
            return bytes([fix | n])
        if m8 is not None and n <= 0xff:
            return bytes([m8, n])
        return bytes([m16]) + n.to_bytes(2, "big") if n <= 0xffff else bytes([m32]) + n.to_bytes(4, "big")
    if isinstance(value, dict):
        return header(len(value), 0x80, 15, None, 0xde, 0xdf) + b"".join(msgpack(k) + msgpack(v) for k, v in value.items())
    if isinstance(value, list):
        return header(len(value), 0x90, 15, None, 0xdc, 0xdd) + b"".join(msgpack(v) for v in value)
    if isinstance(value, str):
        raw = value.encode()
        return header(len(raw), 0xa0, 31, 0xd9, 0xda, 0xdb) + raw
    if isinstance(value, bytes):
        return header(len(value), None, 0, 0xc4, 0xc5, 0xc6) + value
    assert isinstance(value, int) and 0 <= value < 2**32
    if value < 0x80:
        return bytes([value])
    for marker, width in ((0xcc, 1), (0xcd, 2), (0xce, 4)):
        if value < 1 << (8 * width):
            return bytes([marker]) + value.to_bytes(width, "big")


def msgpack_v1_attestation(quote, events, report_data):
    """dstack-attest's AttestationV1 with the tdx platform and dstack stack, v2 runtime events;
    quote and report_data are plain Vec<u8> (arrays of integers), payloads serde_human_bytes (bin)."""
    return msgpack({
        "version": 1,
        "platform": {"kind": "tdx", "data": {"quote": list(quote), "event_log": []}},
        "stack": {"kind": "dstack", "data": {
            "report_data": list(report_data),
            "runtime_events": [{"event": n, "payload": p, "version": 2} for n, p in events],
            "config": "{}"}},
    })


def check_state(verdict, name):
    for check in verdict["checks"]:
        if check["name"] == name:
            return check["state"]
    return None


def real_vector_cases():
    tdx = ["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, vec("dcap-qvl/tdx_quote")]
    rc, out, err = run(tdx)
    file_verdict = out
    h.check("real TDX quote: VALID, exit 0", rc == 0 and out.startswith("VALID\n"), out + err)
    h.check("real TDX quote: TCB status UpToDate, no advisories, strict policy",
            "TCB status:   UpToDate" in out and "advisories:   none" in out and "policy:       strict" in out, out)
    h.check("real TDX quote: checks printed as passed", "passed       quote signature" in out, out)
    h.check("real TDX quote: the stripped event log case says not checked, with the reason",
            "not checked  event log replays RTMR0-2: the input carries no event log" in out, out)

    rc, verdict, err = run_json(tdx)
    h.check("--json: one object with the verdict and dcap-qvl's report",
            rc == 0 and verdict and verdict["verdict"] == "VALID" and verdict["dcap"]["verified"]
            and verdict["dcap"]["status"] == "UpToDate" and verdict["dcap"]["report"]["status"] == "UpToDate"
            and verdict["simulated"] is False, err)
    mrtd = verdict["quote"]["mr_td"] if verdict else ""
    h.check("--json: quote values", mrtd.startswith("91eb2b44") and verdict["quote"]["version"] == 4, mrtd)

    rc, out, err = run(tdx[:-1] + ["--mrtd", mrtd, tdx[-1]])
    h.check("--mrtd matching: VALID", rc == 0 and f"passed       expected MRTD: {mrtd}" in out, out + err)
    rc, out, err = run(tdx[:-1] + ["--mrtd", "00" * 48, tdx[-1]])
    h.check("--mrtd different: INVALID, exit 1", rc == 1 and out.startswith("INVALID") and "expected MRTD" in out, out)
    rc, out, err = run(tdx[:-1] + ["--report-data", "11" * 8, tdx[-1]])
    h.check("--report-data different: INVALID", rc == 1 and "expected report data" in out, out)

    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), vec("dcap-qvl/tdx_quote")])
    h.check("real TDX quote at the real time: INVALID (collateral expired)", rc == 1 and out.startswith("INVALID"), out + err)
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", "2025-07-19T09:00:00Z",
                        vec("dcap-qvl/tdx_quote")])
    h.check("--now as RFC 3339", rc == 0 and out.startswith("VALID\n") and "verified at:  2025-07-19T09:00:00Z" in out,
            out + err)

    with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
        quote = f.read()
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "-"], stdin=quote)
    h.check("quote on standard input: the same verdict as from the file", rc == 0 and out == file_verdict, out + err)
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "-"],
                       stdin=("0x" + quote.hex() + "\n").encode())
    h.check("hex quote on standard input: the same verdict, read as hex",
            rc == 0 and out == file_verdict.replace("input:        raw quote\n", "input:        raw quote (hex)\n"),
            out + err)

    sgx = ["--collateral", vec("dcap-qvl/sgx_quote_collateral.json"), "--now", SGX_NOW]
    rc, out, err = run(sgx + [vec("dcap-qvl/sgx_quote")])
    h.check("real SGX quote: INVALID under the strict policy",
            rc == 1 and "ConfigurationAndSWHardeningNeeded" in out and "failed       TCB policy" in out, out + err)
    h.check("the policy failure says which flags would accept it",
            "to accept:    --allow-status ConfigurationAndSWHardeningNeeded --allow-advisory INTEL-SA-00289 "
            "--allow-advisory INTEL-SA-00615" in out, out)
    relaxed = sgx + ["--allow-status", "ConfigurationAndSWHardeningNeeded", "--allow-advisory", "INTEL-SA-00289",
                     "--allow-advisory", "INTEL-SA-00615", vec("dcap-qvl/sgx_quote")]
    rc, out, err = run(relaxed)
    h.check("real SGX quote: VALID with explicit relaxations, which are printed",
            rc == 0 and "RELAXED" in out and "advisory INTEL-SA-00615 accepted" in out
            and "INTEL-SA-00289, INTEL-SA-00615" in out, out + err)
    rc, out, err = run(sgx + ["--allow-status", "ConfigurationAndSWHardeningNeeded", vec("dcap-qvl/sgx_quote")])
    h.check("real SGX quote: a status relaxation alone does not accept advisories",
            rc == 1 and "advisory INTEL-SA-00289 is not accepted" in out, out)
    rc, out, err = run(sgx + ["--allow-status", "Revoked", vec("dcap-qvl/sgx_quote")])
    h.check("--allow-status Revoked is refused (exit 2)", rc == 2 and "Revoked" in err, err)

    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_outdated_collateral.json"), "--now", OUTDATED_NOW,
                        vec("dcap-qvl/tdx_quote_outdated")])
    h.check("real TDX v5 quote: INVALID, no matching TCB level",
            rc == 1 and "No matching TCB level found" in out and "TDX v5 (TD 1.5)" in out, out + err)

    # dstack evidence (no collateral of their own: DCAP fails, event logs and identity still checked)
    tdx_collateral = ["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW]
    rc, verdict, err = run_json(tdx_collateral + ["--compose", vec("dstack/simulator/app-compose.json"),
                                                  vec("dstack/attestation.bin")])
    ok = verdict is not None
    h.check("V0 attestation: read, INVALID without its collateral (exit 1)",
            ok and rc == 1 and verdict["input"].startswith("V0") and verdict["verdict"] == "INVALID", err)
    h.check("V0 attestation: RTMR0-2 and RTMR3 replay from its event log",
            ok and check_state(verdict, "event log replays RTMR0-2") == "passed"
            and check_state(verdict, "runtime events replay RTMR3") == "passed", verdict and verdict["checks"])
    h.check("V0 attestation: identity values",
            ok and verdict["app_info"] and verdict["app_info"]["mr_system"].startswith("51ea38f8")
            and verdict["app_info"]["mr_aggregated"].startswith("85334a62"), verdict and verdict["app_info"])
    h.check("--compose: another app's compose file is a failed check naming both hashes",
            ok and check_state(verdict, "expected compose hash") == "failed"
            and any("expected 65b4e574" in c["detail"] for c in verdict["checks"]), verdict and verdict["checks"])
    h.check("V0 attestation: its report data matches the quote",
            ok and check_state(verdict, "report data matches the attestation") == "passed")

    rc, verdict, err = run_json(tdx_collateral + [vec("dstack/verifier/tdx-lite-attestation.json")])
    ok = verdict is not None
    h.check("{\"attestation\": hex}: stripped log: RTMR3 replays, RTMR0-2 not checked",
            ok and check_state(verdict, "runtime events replay RTMR3") == "passed"
            and check_state(verdict, "event log replays RTMR0-2") == "not checked", err)
    rc, verdict, err = run_json(tdx_collateral + [vec("dstack/verifier/tdx-lite-getquote.json")])
    ok = verdict is not None
    h.check("GetQuote response: full event log replays RTMR0-3",
            ok and check_state(verdict, "event log replays RTMR0-2") == "passed"
            and check_state(verdict, "runtime events replay RTMR3") == "passed", err)
    rc, verdict, err = run_json(tdx_collateral + ["--event-log", vec("dstack/ccel.bin"), vec("dcap-qvl/quote-from-tappd.hex")])
    rtmr_detail = [c["detail"] for c in (verdict or {}).get("checks", []) if c["name"] == "event log replays RTMR0-2"]
    h.check("--event-log with a CCEL file: RTMR0 replays to the quote's, the partial log's RTMR1 does not",
            rc == 1 and rtmr_detail and rtmr_detail[0].startswith("RTMR1 mismatch"), rtmr_detail or err)
    rc, out, err = run(tdx_collateral + ["--event-log", vec("dstack/ccel.bin"), vec("dstack/attestation.bin")])
    h.check("--event-log with evidence that has its own log: exit 2", rc == 2 and "already carries" in err, err)
    rc, out, err = run(tdx_collateral + [vec("dcap-qvl/quote-from-tappd.hex")])
    h.check("hex quote file: parsed (TDX v4), INVALID against another platform's collateral",
            rc == 1 and "quote:        TDX v4" in out, out + err)


def usage_cases(tmp):
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), os.path.join(tmp, "missing")])
    h.check("missing input file: exit 2 with the path", rc == 2 and "missing" in err, err)
    rc, out, err = run(["--no-such-flag", "x"])
    h.check("unknown flag: exit 2", rc == 2 and "no-such-flag" in err, err)
    rc, out, err = run(["--now", "yesterday", "--collateral", vec("dcap-qvl/tdx_quote_collateral.json"),
                        vec("dcap-qvl/tdx_quote")])
    h.check("bad --now: exit 2", rc == 2 and "--now" in err, err)
    rc, out, err = run(["--collateral", os.path.join(tmp, "missing.json"), vec("dcap-qvl/tdx_quote")])
    h.check("missing collateral file: exit 2", rc == 2, err)
    garbage = os.path.join(tmp, "garbage.bin")
    with open(garbage, "wb") as f:
        f.write(b"\xff" * 100)
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, garbage])
    h.check("garbage quote with collateral: INVALID (exit 1), reason says why",
            rc == 1 and "Failed to decode quote" in out, out + err)
    big = os.path.join(tmp, "big.bin")
    with open(big, "wb") as f:
        f.write(b"\x04" * (11 * 1024 * 1024))
    rc, out, err = run(["--collateral", vec("dcap-qvl/tdx_quote_collateral.json"), big])
    h.check("input over 10 MiB refused (exit 2)", rc == 2, err)
    rc, out, err = run(["--help"])
    h.check("--help documents the exit codes", rc == 0 and "Exit status: 0 valid; 1 invalid" in out)


def sim_cases(tmp):
    pki = os.path.join(tmp, "pki")
    rc, out, err = run(["sim", "init", pki])
    h.check("sim init", rc == 0 and os.path.exists(os.path.join(pki, "root.pem")), out + err)
    key_modes = [oct(os.stat(os.path.join(pki, name)).st_mode & 0o777) for name in os.listdir(pki) if name.endswith(".key")]
    h.check("sim init: private keys are 0600", key_modes and all(mode == "0o600" for mode in key_modes), key_modes)
    root = os.path.join(pki, "root.pem")

    def make(args, name):
        path = os.path.join(tmp, name)
        rc, out, err = run(args[:2] + [pki, "-o", path] + args[2:])
        if rc != 0:
            h.check(f"sim {' '.join(args)}", False, out + err)
        return path

    collateral = make(["sim", "collateral"], "sim-collateral.json")
    quote = make(["sim", "quote", "--report-data", "abcd"], "sim-quote.bin")
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, "--report-data", "abcd", quote])
    h.check("sim TDX v4 quote: VALID SIMULATED", rc == 0 and out.startswith("VALID SIMULATED"), out + err)
    rc, verdict, err = run_json(["--collateral", collateral, "--trust-root", root, quote])
    h.check("sim quote --json: simulated true", rc == 0 and verdict and verdict["simulated"] is True, err)
    rc, out, err = run(["--collateral", collateral, quote])
    h.check("sim quote without --trust-root: INVALID (Intel's root does not sign it)",
            rc == 1 and out.startswith("INVALID"), out + err)

    for version, extra, name in [("5", [], "v5 TD 1.0"), ("5", ["--td15"], "v5 TD 1.5")]:
        q = make(["sim", "quote", "--version", version] + extra, f"sim-{version}{''.join(extra)}.bin")
        rc, out, err = run(["--collateral", collateral, "--trust-root", root, q])
        h.check(f"sim TDX {name} quote: VALID SIMULATED", rc == 0 and out.startswith("VALID SIMULATED"), out + err)

    sgx_collateral = make(["sim", "collateral", "--sgx"], "sim-sgx-collateral.json")
    sgx_quote = make(["sim", "quote", "--version", "3"], "sim-sgx.bin")
    rc, out, err = run(["--collateral", sgx_collateral, "--trust-root", root, sgx_quote])
    h.check("sim SGX v3 quote: VALID SIMULATED", rc == 0 and out.startswith("VALID SIMULATED"), out + err)

    outdated = make(["sim", "collateral", "--status", "OutOfDate"], "sim-outdated.json")
    rc, out, err = run(["--collateral", outdated, "--trust-root", root, quote])
    h.check("OutOfDate: INVALID under the strict policy", rc == 1 and "TCB status OutOfDate is not accepted" in out, out)
    rc, out, err = run(["--collateral", outdated, "--trust-root", root, "--allow-status", "OutOfDate", quote])
    h.check("OutOfDate: VALID with --allow-status OutOfDate, printed as RELAXED",
            rc == 0 and "RELAXED: TCB status OutOfDate accepted" in out, out)

    # A dstack-shaped CVM: runtime events extended into RTMR3, delivered as a GetQuote response.
    def v1_digest(name, payload):
        return hashlib.sha384((0x08000001).to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()

    with open(vec("dstack/simulator/app-compose.json"), "rb") as f:
        compose = f.read()
    app_id = bytes(range(20))
    events = [("system-preparing", b""), ("app-id", app_id), ("compose-hash", hashlib.sha256(compose).digest()),
              ("instance-id", b"\x11" * 20), ("boot-mr-done", b""), ("os-image-hash", b"\x22" * 32),
              ("key-provider", b'{"name":"kms","id":"abcd"}'), ("system-ready", b"")]
    rtmr3 = bytes(48)
    for name, payload in events:
        rtmr3 = hashlib.sha384(rtmr3 + v1_digest(name, payload)).digest()
    report_data = "ab" * 64
    cvm_quote = make(["sim", "quote", "--rtmr3", rtmr3.hex(), "--report-data", report_data], "sim-cvm.bin")
    with open(cvm_quote, "rb") as f:
        quote_hex = f.read().hex()

    def getquote(event_list, name):
        path = os.path.join(tmp, name)
        log = [{"imr": 3, "event_type": 134217729, "digest": v1_digest(n, p).hex(), "event": n,
                "event_payload": p.hex()} for n, p in event_list]
        with open(path, "w") as f:
            json.dump({"quote": quote_hex, "event_log": json.dumps(log), "report_data": report_data}, f)
        return path

    good = getquote(events, "getquote.json")
    rc, verdict, err = run_json(["--collateral", collateral, "--trust-root", root, "--compose",
                                 vec("dstack/simulator/app-compose.json"), "--app-id", app_id.hex(), good])
    h.check("sim CVM (GetQuote JSON): VALID with the expected compose hash and app id",
            rc == 0 and verdict and verdict["verdict"] == "VALID"
            and check_state(verdict, "expected compose hash") == "passed"
            and check_state(verdict, "expected app id") == "passed"
            and check_state(verdict, "runtime events replay RTMR3") == "passed", err or verdict)
    h.check("sim CVM: identity values from the events",
            verdict and verdict["app_info"]["compose_hash"].startswith("65b4e574")
            and verdict["app_info"]["os_image_hash"] == "22" * 32
            and verdict["app_info"]["instance_id"] == "11" * 20, verdict and verdict["app_info"])
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, good])
    h.check("sim CVM: text verdict shows the identity", rc == 0 and "compose hash      65b4e574" in out, out + err)
    tampered = getquote(events[:2] + [("compose-hash", b"\x00" * 32)] + events[3:], "getquote-tampered.json")
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, tampered])
    h.check("sim CVM: a changed event payload breaks the RTMR3 replay: INVALID",
            rc == 1 and "failed       runtime events replay RTMR3: RTMR3 mismatch" in out, out + err)
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, "--compose", vec("dcap-qvl/tdx_quote_collateral.json"),
                        good])
    h.check("sim CVM: another compose file: INVALID", rc == 1 and "failed       expected compose hash" in out, out + err)

    # The same CVM with v2 runtime events (JCS preimages), delivered as a V1 attestation: the
    # MessagePack written here by a small encoder of this test, in upstream's to_vec_named shapes.
    def v2_digest(name, payload):
        preimage = json.dumps({"name": name, "payload": payload.hex(), "type": 134217729},
                              sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha384(preimage).digest()

    rtmr3_v2 = bytes(48)
    for name, payload in events:
        rtmr3_v2 = hashlib.sha384(rtmr3_v2 + v2_digest(name, payload)).digest()
    v2_quote = make(["sim", "quote", "--rtmr3", rtmr3_v2.hex(), "--report-data", report_data], "sim-cvm-v2.bin")
    with open(v2_quote, "rb") as f:
        v2_quote_bytes = f.read()
    v1_file = os.path.join(tmp, "attestation-v1.bin")
    with open(v1_file, "wb") as f:
        f.write(msgpack_v1_attestation(v2_quote_bytes, events, bytes.fromhex(report_data)))
    rc, verdict, err = run_json(["--collateral", collateral, "--trust-root", root, "--compose",
                                 vec("dstack/simulator/app-compose.json"), "--app-id", app_id.hex(), v1_file])
    h.check("sim CVM (V1 attestation, v2 events): VALID, RTMR3 replayed, identity and report data checked",
            rc == 0 and verdict and verdict["verdict"] == "VALID" and verdict["input"].startswith("V1 attestation")
            and check_state(verdict, "runtime events replay RTMR3") == "passed"
            and check_state(verdict, "expected compose hash") == "passed"
            and check_state(verdict, "report data matches the attestation") == "passed", err or verdict)
    with open(v1_file + ".hex", "w") as f:
        f.write(json.dumps({"attestation": msgpack_v1_attestation(v2_quote_bytes, events, bytes.fromhex(report_data)).hex()}))
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, v1_file + ".hex"])
    h.check("sim CVM ({\"attestation\": V1 hex}): VALID SIMULATED", rc == 0 and out.startswith("VALID SIMULATED"), out + err)
    tampered_v1 = os.path.join(tmp, "attestation-v1-tampered.bin")
    with open(tampered_v1, "wb") as f:
        f.write(msgpack_v1_attestation(v2_quote_bytes, events[:2] + [("compose-hash", b"\x00" * 32)] + events[3:],
                                       bytes.fromhex(report_data)))
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, tampered_v1])
    h.check("sim CVM (V1): a changed event payload breaks the RTMR3 replay: INVALID",
            rc == 1 and "failed       runtime events replay RTMR3: RTMR3 mismatch" in out, out + err)
    with open(tampered_v1, "wb") as f:
        f.write(msgpack_v1_attestation(v2_quote_bytes, events, bytes.fromhex(report_data)) + b"\xc0")
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, tampered_v1])
    h.check("V1 attestation with a trailing byte: exit 2 naming it", rc == 2 and "trailing bytes" in err, out + err)

    # RA-TLS: a certificate made by the real openssl CLI carrying a quote (dstack's legacy extensions
    # 1.3.6.1.4.1.62397.1.1 and .2, each an OCTET STRING inside extnValue) whose report data commits
    # to the certificate's key.
    def der_octet_string(content):
        n = len(content)
        length = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xff]))
        return b"\x04" + length + content

    def ratls_certificate(name, key, quote_file):
        with open(quote_file, "rb") as f:
            quote_bytes = f.read()
        cert = os.path.join(tmp, name)
        openssl(["req", "-x509", "-new", "-key", key, "-subj", "/CN=ratls.test", "-days", "1",
                 "-addext", "1.3.6.1.4.1.62397.1.1=DER:" + der_octet_string(quote_bytes).hex(),
                 "-addext", "1.3.6.1.4.1.62397.1.2=DER:" + der_octet_string(b"[]").hex(), "-out", cert])
        return cert

    keys = []
    for i in range(2):
        key = os.path.join(tmp, f"ratls{i}.key")
        openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        keys.append(key)
    spki = openssl(["pkey", "-in", keys[0], "-pubout", "-outform", "DER"])
    bound = hashlib.sha512(b"ratls-cert:" + spki).hexdigest()
    ratls_quote = make(["sim", "quote", "--report-data", bound], "sim-ratls.bin")
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, ratls_certificate("ratls.pem", keys[0], ratls_quote)])
    h.check("RA-TLS certificate (openssl-made) whose quote commits to its key: VALID",
            rc == 0 and "passed       certificate key bound to the quote" in out and "RA-TLS certificate" in out, out + err)
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, ratls_certificate("other.pem", keys[1], ratls_quote)])
    h.check("the same quote in a certificate with another key: INVALID",
            rc == 1 and "failed       certificate key bound to the quote" in out, out + err)

    debug = make(["sim", "quote", "--debug"], "sim-debug.bin")
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, debug])
    h.check("debug TD: INVALID", rc == 1 and "Debug mode is enabled" in out, out)
    rc, out, err = run(["--collateral", collateral, "--trust-root", root, "--allow-debug", debug])
    h.check("debug TD: VALID with --allow-debug, printed as RELAXED", rc == 0 and "debug TDs / enclaves accepted" in out, out)


def pccs_cases(tmp):
    with open(vec("dcap-qvl/tdx_quote_collateral.json")) as f:
        collateral = json.load(f)
    with Pccs(collateral) as pccs:
        url = pccs.url
        out_file = os.path.join(tmp, "captured.json")
        cache = os.path.join(tmp, "cache")
        rc, out, err = run(["collateral", vec("dcap-qvl/tdx_quote"), "-o", out_file, "--pccs", url,
                            "--cache-dir", cache, "--now", TDX_NOW])
        h.check("verify collateral: captured from a PCCS", rc == 0 and os.path.exists(out_file), out + err)
        if rc == 0:
            with open(out_file) as f:
                captured = json.load(f)
            same = all(captured[k] == collateral[k] for k in
                       ["tcb_info", "qe_identity", "tcb_info_signature", "qe_identity_signature", "pck_crl", "root_ca_crl"])
            h.check("verify collateral: the signed documents are byte-identical to what was served", same)
            h.check("verify collateral: the PCK chain is carried", "BEGIN CERTIFICATE" in captured.get("pck_certificate_chain", ""))
            rc, out, err = run(["--collateral", out_file, "--now", TDX_NOW, vec("dcap-qvl/tdx_quote")])
            h.check("captured collateral verifies offline: VALID", rc == 0 and out.startswith("VALID"), out + err)
        pccs.reset()
        rc, out, err = run(["--pccs", url, "--cache-dir", os.path.join(tmp, "cache2"), "--now", TDX_NOW,
                            vec("dcap-qvl/tdx_quote")])
        h.check("online verification through --pccs: VALID", rc == 0 and out.startswith("VALID"), out + err)
        h.check("online verification asked the PCS v4 endpoints",
                any(r.startswith("/tdx/certification/v4/tcb?fmspc=B0C06F000000") for r in pccs.requests),
                pccs.requests)
    rc, out, err = run(["--pccs", url, "--cache-dir", os.path.join(tmp, "cache2"), "--now", TDX_NOW,
                        vec("dcap-qvl/tdx_quote")])
    h.check("the PCCS gone: the on-disk cache still answers", rc == 0 and out.startswith("VALID"), out + err)
    rc, out, err = run(["--pccs", url, "--cache-dir", os.path.join(tmp, "empty-cache"), "--now", TDX_NOW,
                        vec("dcap-qvl/tdx_quote")])
    h.check("the PCCS gone and no cache: exit 2 naming the URL", rc == 2 and "127.0.0.1" in err, err)


def main(harness_):
    global h
    h = harness_
    with h.group("real vectors"):
        real_vector_cases()
    with h.group("usage"):
        usage_cases(h.tmpdir("usage"))
    with h.group("simulator"):
        sim_cases(h.tmpdir("sim"))
    with h.group("PCCS"):
        pccs_cases(h.tmpdir("pccs"))


if __name__ == "__main__":
    harness.main(main, needs=["openssl"])
