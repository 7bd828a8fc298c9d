#!/usr/bin/env python3
"""Three `dstack gateway serve` nodes on one etcd (Debian's etcd-server, started here), with ACME
from pebble (DNS-01 through the Cloudflare stand-in of test_gateway_acme.py):

- each node serves the self-signed wildcard until ACME succeeds (the Cloudflare token is wrong at
  first), then the certificate one node issued, on every node, without a restart;
- a CVM registered on one node is routed by the others;
- a node killed with SIGKILL leaves the others serving; registrations made while it is down
  reach it when it comes back (it catches up from etcd);
- certificate keys in etcd are sealed, never in clear.

Backends stand for CVMs on 127.0.1.x (every 127/8 address is this host); each node hands out
addresses from its own part of 127.0.1.0/24, as upstream's nodes use disjoint ranges.

    test_gateway_cluster.py BUILD_DIR
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import harness
from test_gateway import curl, start_origin, free_port
from test_gateway_acme import Cloudflare, Pebble, TOKEN, wait_port

BASE = "gw.test.local"  # under the stand-in's zone test.local
APP = "e1" * 20


def wg_key(n):
    return base64.b64encode(bytes([n]) * 32).decode()


def etcd_keys(url, prefix):
    """Every key and value under prefix, read with etcd's own JSON API (an independent reader)."""
    start = base64.b64encode(prefix.encode()).decode()
    end = base64.b64encode(prefix[:-1].encode() + bytes([prefix.encode()[-1] + 1])).decode()
    request = urllib.request.Request(f"{url}/v3/kv/range", data=json.dumps({"key": start, "range_end": end}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        kvs = json.load(response).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode(errors="replace") for kv in kvs}


def node_cmd(h, n, etcd_url, pebble, cf, token_file, seal_file, token_admin):
    data = os.path.join(h.tmp, f"node{n}")
    os.makedirs(data, exist_ok=True)
    first = 64 * (n - 1)
    return [h.dstack, "gateway", "serve", "--proxy-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
            "--admin-listen", "127.0.0.1:0", "--admin-token-file", token_admin, "--debug-listen", "127.0.0.1:0",
            "--base-domain", BASE, "--no-wireguard", "--data-dir", data, "--seal-key-file", seal_file,
            "--etcd", etcd_url, "--node-id", str(n), "--node-url", f"https://node{n}.example:8010",
            "--wg-ip", f"127.0.1.{first + 1}/24", "--wg-reserved-net", f"127.0.1.{first + 1}/32",
            "--wg-client-range", f"127.0.1.{first}/26",
            "--acme-url", pebble.acme_url, "--acme-ca-file", pebble.ca, "--cloudflare-api-url", cf.url,
            "--cloudflare-token-file", token_file, "--acme-check-interval", "1h"]


def served_certificate(h, port, name):
    r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name], stdin="", timeout=20)
    text = r.out
    if "-----BEGIN CERTIFICATE-----" not in text:
        return None
    pem = text[text.index("-----BEGIN CERTIFICATE-----"):text.index("-----END CERTIFICATE-----") + 25] + "\n"
    x = subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer"], input=pem, capture_output=True, text=True)
    return x.stdout


def admin(adm, method, token, body=None):
    return harness.http_request(adm, "POST", f"/prpc/Admin.{method}?json", json.dumps(body or {}).encode(),
                                {"Content-Type": "application/json", "X-Admin-Token": token}, timeout=60)


def wait_for(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise harness.Failure(f"{what}: not within {timeout} s (last: {last!r})")


def main(h):
    procs = []
    cf = None
    etcd = None
    try:
        d = h.tmpdir("cluster")
        pebble = Pebble(h, d, procs)
        cf = Cloudflare(pebble.challtestsrv)
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        etcd = subprocess.Popen(["etcd", "--data-dir", os.path.join(d, "etcd"), "--listen-client-urls", etcd_url,
                                 "--advertise-client-urls", etcd_url, "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
                                stdout=open(os.path.join(d, "etcd.log"), "w"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=harness._die_with_parent)
        wait_port(client_port, etcd, "etcd")
        run(h, d, etcd_url, pebble, cf)
    finally:
        if cf:
            cf.close()
        for proc in procs + ([etcd] if etcd else []):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(h, d, etcd_url, pebble, cf):
    token_file = os.path.join(d, "cf-token")
    with open(token_file, "w") as f:
        f.write("not-the-token\n")  # ACME fails until the operator fixes it
    seal_file = os.path.join(d, "seal.key")
    with open(seal_file, "w") as f:
        f.write(os.urandom(32).hex())
    admin_token = "cluster-admin"
    token_admin = os.path.join(d, "admin-token")
    with open(token_admin, "w") as f:
        f.write(admin_token)
    backend_port = free_port("127.0.1.2")
    start_origin("127.0.1.2", backend_port, "cvm-a")
    later_port = free_port("127.0.1.3")
    start_origin("127.0.1.3", later_port, "cvm-b")
    cmds = [node_cmd(h, n, etcd_url, pebble, cf, token_file, seal_file, token_admin) for n in (1, 2, 3)]
    name = f"gateway.{BASE}"
    with h.server(cmds[0], count=4, name="node 1", timeout=60) as n1, \
            h.server(cmds[1], count=4, name="node 2", timeout=60) as n2:
        nodes = {1: n1, 2: n2}
        with h.server(cmds[2], count=4, name="node 3", timeout=60, check_exit=False) as n3:
            nodes[3] = n3

            with h.case("before ACME succeeds every node serves the same self-signed wildcard (one made, shared)"):
                seen = {n: served_certificate(h, s.addresses[0].port, name) for n, s in nodes.items()}
                harness.expect(all(seen.values()), seen)
                harness.expect(len(set(seen.values())) == 1, f"different certificates: {seen}")
                status = admin(n2.addresses[2], "Status", admin_token).json()
                harness.expect(status["certificates"][0]["self_signed"] is True, status["certificates"])
                harness.expect(len(status["nodes"]) == 3, status["nodes"])

            with h.case("the operator fixes the token; RenewCert on node 1: pebble's certificate on all three, no restart"):
                with open(token_file, "w") as f:
                    f.write(TOKEN + "\n")
                r = admin(n1.addresses[2], "RenewCert", admin_token)
                harness.expect(r.status == 200 and r.json()["renewed"] is True, r)

                def all_pebble():
                    seen = {n: served_certificate(h, s.addresses[0].port, name) for n, s in nodes.items()}
                    ok = all(v and "Pebble" in v for v in seen.values()) and len(set(seen.values())) == 1
                    return seen if ok else None
                seen = wait_for("every node serving the ACME certificate", all_pebble)
                status = admin(n3.addresses[2], "Status", admin_token).json()
                harness.expect(status["certificates"][0]["source"] == "acme", status["certificates"])
                m = harness.http_request(n3.addresses[2], "GET", "/metrics", headers={"X-Admin-Token": admin_token}).text()
                harness.expect(f'dstack_gateway_certificate_self_signed{{domain="{BASE}"}} 0' in m, m[-800:])

            with h.case("etcd holds the certificate with its key sealed (read with etcd's own API)"):
                kvs = etcd_keys(etcd_url, "/dstack-gateway/cert/")
                record = json.loads(kvs[f"/dstack-gateway/cert/{BASE}/acme"])
                harness.expect(record["key_sealed"].startswith("aes-256-gcm:"), record.keys())
                harness.expect(not any("PRIVATE KEY" in v for v in kvs.values()), "a private key in clear in etcd")
                account = etcd_keys(etcd_url, "/dstack-gateway/acme/")["/dstack-gateway/acme/account"]
                harness.expect("PRIVATE KEY" not in account and "aes-256-gcm:" in account, account[:200])

            with h.case("a CVM registered on node 1 is routed by nodes 2 and 3"):
                body = {"client_public_key": wg_key(1), "app_id": APP, "instance_id": "f1" * 20,
                        "port_policy": {"restrict_mode": False}}
                r = harness.http_request(n1.addresses[3], "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
                harness.expect(r.status == 200 and r.json()["wg"]["client_ip"] == "127.0.1.2", r)

                def routed(node):
                    port = node.addresses[0].port
                    _, status, _, out = curl(h, f"https://{APP}-{backend_port}.{BASE}:{port}/x", "-k", resolve_port=port)
                    return out if status == 200 else None
                for n in (2, 3):
                    out = wait_for(f"node {n} routing the CVM", lambda: routed(nodes[n]))
                    harness.expect(out == b"origin cvm-a /x", out)

            with h.case("node 3 killed: nodes 1 and 2 keep serving"):
                n3.proc.send_signal(signal.SIGKILL)
                n3.proc.wait(timeout=10)
                for n in (1, 2):
                    port = nodes[n].addresses[0].port
                    _, status, _, out = curl(h, f"https://{APP}-{backend_port}.{BASE}:{port}/y", "-k", resolve_port=port)
                    harness.expect(status == 200 and out == b"origin cvm-a /y", f"node {n}: {status} {out}")

            body = {"client_public_key": wg_key(2), "app_id": "e2" * 20, "instance_id": "f2" * 20,
                    "port_policy": {"restrict_mode": False}}
            with h.case("while node 3 is down, node 1 registers a second CVM"):
                r = harness.http_request(n1.addresses[3], "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
                harness.expect(r.status == 200 and r.json()["wg"]["client_ip"] == "127.0.1.3", r)

        with h.case("node 3 restarted catches up from etcd: it routes the CVM registered while it was down"):
            with h.server(cmds[2], count=4, name="node 3 (restarted)", timeout=60) as again:
                port = again.addresses[0].port
                _, status, _, out = curl(h, f"https://{'e2' * 20}-{later_port}.{BASE}:{port}/z", "-k", resolve_port=port)
                harness.expect(status == 200 and out == b"origin cvm-b /z", f"{status} {out}")
                seen = served_certificate(h, port, name)
                harness.expect(seen and "Pebble" in seen, seen)
                status = admin(again.addresses[2], "Status", admin_token).json()
                harness.expect(len(status["hosts"]) == 2 and len(status["nodes"]) == 3, status)

        with h.case("renewal before expiry: a node renewing early replaces the certificate on every node"):
            before = served_certificate(h, n1.addresses[0].port, name)
            cmd = node_cmd(h, 4, etcd_url, pebble, cf, token_file, seal_file, token_admin)
            cmd[cmd.index("--acme-check-interval") + 1] = "2s"
            cmd += ["--acme-renew-before", "36500d"]  # every certificate is "about to expire"
            with h.server(cmd, count=4, name="node 4 (renews early)", timeout=60):
                after = wait_for("a renewed certificate on node 1",
                                 lambda: (lambda c: c if c and c != before and "Pebble" in c else None)(
                                     served_certificate(h, n1.addresses[0].port, name)), timeout=40)
                harness.expect(after != before, after)
                # Node 2 follows through etcd (node 4 may have renewed again meanwhile: any new one).
                wait_for("a renewed certificate on node 2",
                         lambda: (lambda c: c if c and c != before and "Pebble" in c else None)(
                             served_certificate(h, n2.addresses[0].port, name)), timeout=40)

        with h.case("SetNodeStatus down: node 2 is left out of RegisterCvm's servers and refuses registrations itself"):
            r = admin(n1.addresses[2], "SetNodeStatus", admin_token, {"id": 2, "status": "down"})
            harness.expect(r.status == 200, r)
            r = admin(n1.addresses[2], "SetNodeStatus", admin_token, {"id": 2, "status": "sideways"})
            harness.expect(r.status == 400 and "expected 'up' or 'down'" in r.text(), r)
            body = {"client_public_key": wg_key(3), "app_id": "e3" * 20, "instance_id": "f3" * 20}

            def refused_by_node2():
                r = harness.http_request(n2.addresses[3], "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
                return r if r.status == 400 and "marked as down" in r.text() else None
            wait_for("node 2 refusing registrations", refused_by_node2)
            r = harness.http_request(n1.addresses[3], "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
            harness.expect(r.status == 200, r)
            ids = sorted(g["id"] for g in r.json()["gateways"])
            harness.expect(ids == [1, 3, 4] or ids == [1, 3], f"node 2 still listed: {r.json()['gateways']}")
            statuses = admin(n1.addresses[2], "GetNodeStatuses", admin_token).json()
            harness.expect({"node_id": 2, "status": "down"} in statuses, statuses)

        with h.case("a node id already used by another node (another uuid) is refused"):
            other = os.path.join(h.tmp, "node-impostor")
            os.makedirs(other, exist_ok=True)
            cmd = list(cmds[1])
            cmd[cmd.index("--data-dir") + 1] = other
            r = h.run(cmd, timeout=30)
            harness.expect(r.rc != 0 and "already used by another gateway node" in r.err, r)


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl", "etcd", "pebble"])
