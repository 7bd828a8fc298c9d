#!/usr/bin/env python3
"""The published @phala/dstack-sdk (npm 0.5.8) against our guest agent.

    test_dstack_sdk.py DSTACK_BINARY [--verbose]

Starts `dstack agent --simulator TMPDIR` twice on the same directory: once with its unix sockets
(TMPDIR/dstack.sock, TMPDIR/tappd.sock: the SDK's hand-written HTTP client, spec/agent.md §1.6)
and once with the dstack and Tappd services on loopback TCP (the SDK's node `http` path), and
runs dstack-sdk-suite.mjs against each. Then:
  * every quote the SDK got back (GetQuote and Tappd TdxQuote JSON, Attest's attestation) and the
    RA-TLS certificate of getTlsKey({usageRaTls: true}) goes through
    `dstack verify --trust-root TMPDIR/tee/root.pem --collateral TMPDIR/tee/collateral.json`,
    which must say VALID (exit 0) with the report data the suite asked for;
  * the deterministic answers (GetKey, Tappd DeriveKey, Sign's key, Info's app id, wallet
    addresses) must be the same over both transports.
python3 stdlib only; loopback only; bounded (node gets 30 s per transport, each verify 20 s).
The last line is "dstack-sdk-compat: N passed, M failed".
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "dstack-sdk-suite.mjs")
# Non-ASCII on purpose: Info then carries it (app_name, tcb_info.app_compose), and the SDK's unix
# client finishes only if the agent escapes it (byte length = JS string length, spec/agent.md §1.6).
APP_NAME = "dstack-sdk-compat caf\u00e9 \u2713"
APP_COMPOSE = {
    "manifest_version": 2,
    "name": APP_NAME,
    "runner": "docker-compose",
    "docker_compose_file": "services: {}\n",
    "kms_enabled": False,
    "gateway_enabled": False,
    "local_key_provider_enabled": False,
    "key_provider": "none",
    "public_logs": True,
    "public_sysinfo": True,
    "public_tcbinfo": True,
    "no_instance_id": False,
}

passed = 0
failed = 0
verbose = False


def record(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        if verbose:
            print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


class Agent:
    """`dstack agent --simulator DIR [listeners]`, up once its "listening on" lines are out."""

    def __init__(self, binary, sim_dir, extra):
        self.lines = []
        self.proc = subprocess.Popen([binary, "agent", "--simulator", sim_dir, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def wait_listening(self, count, timeout=15):
        deadline = time.monotonic() + timeout
        # readline blocks; a reader thread with a deadline keeps a hung agent from hanging us.
        done = threading.Event()

        def read():
            for line in self.proc.stdout:
                m = re.search(r"listening on (\S+)", line)
                if m:
                    self.lines.append(m.group(1))
                    if len(self.lines) >= count:
                        break
            done.set()

        threading.Thread(target=read, daemon=True).start()
        done.wait(max(0.0, deadline - time.monotonic()))
        if len(self.lines) < count:
            self.stop()
            raise RuntimeError(f"agent did not listen ({self.lines}); stderr: {''.join(self.stderr)[-2000:]}")
        return self.lines

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_suite(label, dstack_ep, tappd_ep, sim_dir, out_dir):
    """Runs the node suite; returns (artifacts, facts)."""
    try:
        proc = subprocess.run(["node", SUITE, "--dstack", dstack_ep, "--tappd", tappd_ep, "--label", label,
                               "--out", out_dir, "--appkeys", os.path.join(sim_dir, "appkeys.json"),
                               "--app-name", APP_NAME],
                              cwd=HERE, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as e:
        record(f"{label}: suite finished", False, f"node ran past 30 s; output: {(e.stdout or b'')[-2000:]!r}")
        return [], {}
    artifacts, facts, summary = [], {}, None
    for line in proc.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            record(f"{label}: suite output", False, f"not JSON: {line[:200]}")
            continue
        if "check" in item:
            record(f"{label}: {item['check']}", item["ok"], item.get("detail"))
        elif "artifact" in item:
            artifacts.append(item)
        elif "facts" in item:
            facts = item["facts"]
        elif "summary" in item:
            summary = item["summary"]
    if summary is None:
        record(f"{label}: suite finished", False, f"rc {proc.returncode}; stderr: {proc.stderr[-2000:]}")
    elif proc.returncode != (0 if summary["failed"] == 0 else 1):
        record(f"{label}: suite exit status", False, f"rc {proc.returncode} with {summary}")
    return artifacts, facts


def verify_artifact(binary, sim_dir, item):
    name = f"{item['label']}: dstack verify {item['note']} ({os.path.basename(item['artifact'])})"
    try:
        proc = subprocess.run([binary, "verify", "--json", "--trust-root", os.path.join(sim_dir, "tee", "root.pem"),
                               "--collateral", os.path.join(sim_dir, "tee", "collateral.json"), item["artifact"]],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        record(name, False, "dstack verify ran past 20 s")
        return
    try:
        verdict = json.loads(proc.stdout)
    except ValueError:
        record(name, False, f"rc {proc.returncode}, not JSON: {proc.stdout[-500:]} {proc.stderr[-500:]}")
        return
    problems = []
    if proc.returncode != 0 or verdict.get("verdict") != "VALID":
        failing = [c for c in verdict.get("checks", []) if c.get("status") not in ("passed", "not checked", "skipped")]
        problems.append(f"rc {proc.returncode}, verdict {verdict.get('verdict')}: {verdict.get('reason')} {failing[:3]}")
    got = (verdict.get("quote") or {}).get("report_data")
    if got != item["report_data"]:
        problems.append(f"report_data in the verdict {got}, asked {item['report_data']}")
    if verdict.get("simulated") is not True:
        problems.append("verdict does not say simulated")
    record(name, not problems, "; ".join(problems))


def main():
    global verbose
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dstack")
    parser.add_argument("--verbose", action="store_true", help="also list the checks that pass")
    options = parser.parse_args()
    verbose = options.verbose
    binary = os.path.abspath(options.dstack)
    if not os.path.isdir(os.path.join(HERE, "node_modules", "@phala", "dstack-sdk")):
        print("FAIL setup: tests/compat/node_modules lacks @phala/dstack-sdk (run scripts/setup)")
        print("dstack-sdk-compat: 0 passed, 1 failed")
        return 1
    if shutil.which("node") is None:
        print("FAIL setup: node is not installed")
        print("dstack-sdk-compat: 0 passed, 1 failed")
        return 1

    work = tempfile.mkdtemp(prefix="dstack-sdk-compat-")
    sim_dir = os.path.join(work, "sim")
    out_dir = os.path.join(work, "out")
    os.makedirs(out_dir)
    os.makedirs(sim_dir)
    # The simulator keeps an app-compose.json it finds (and writes the other boot files).
    with open(os.path.join(sim_dir, "app-compose.json"), "w", encoding="utf-8") as f:
        json.dump(APP_COMPOSE, f, indent=2, ensure_ascii=False)
    results = {}
    try:
        # Unix sockets, the way containers reach the agent.
        agent = Agent(binary, sim_dir, [])
        try:
            agent.wait_listening(4)
            record("unix: listeners", os.path.exists(os.path.join(sim_dir, "dstack.sock")) and
                   os.path.exists(os.path.join(sim_dir, "tappd.sock")), f"listening on {agent.lines}")
            results["unix"] = run_suite("unix", os.path.join(sim_dir, "dstack.sock"),
                                        os.path.join(sim_dir, "tappd.sock"), sim_dir, out_dir)
        finally:
            agent.stop()
        # The same simulator directory (same keys and TEE state) on loopback TCP; port 0 lets the
        # kernel pick, and the "listening on" lines come in the order dstack, tappd.
        agent = Agent(binary, sim_dir, ["--dstack-socket", "127.0.0.1:0", "--tappd-socket", "127.0.0.1:0",
                                        "--external", "none", "--guest-api", "none"])
        try:
            lines = agent.wait_listening(2)
            ports = [re.fullmatch(r"tcp:127\.0\.0\.1:(\d+)", line) for line in lines]
            record("http: listeners", all(ports), f"listening on {lines}")
            if all(ports):
                dstack_url, tappd_url = (f"http://127.0.0.1:{m.group(1)}" for m in ports)
                results["http"] = run_suite("http", dstack_url, tappd_url, sim_dir, out_dir)
        finally:
            agent.stop()

        artifacts = [a for label in results for a in results[label][0]]
        record("artifacts: quotes and an RA-TLS certificate from each transport",
               all(any(a["label"] == label and a["kind"] == kind for a in artifacts)
                   for label in ("unix", "http") for kind in ("quote", "ratls")),
               f"{[(a['label'], a['kind']) for a in artifacts]}")
        for item in artifacts:
            verify_artifact(binary, sim_dir, item)

        if "unix" in results and "http" in results:
            unix_facts, http_facts = results["unix"][1], results["http"][1]
            record("facts: collected", len(unix_facts) >= 10, f"{sorted(unix_facts)}")
            for key in sorted(set(unix_facts) | set(http_facts)):
                record(f"same over unix and http: {key}", unix_facts.get(key) == http_facts.get(key),
                       f"unix {unix_facts.get(key)!r}, http {http_facts.get(key)!r}")
    except Exception as error:  # an agent that does not start is a failure, with its reason
        record("harness", False, f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"dstack-sdk-compat: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
