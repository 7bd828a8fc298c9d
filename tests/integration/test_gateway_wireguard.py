#!/usr/bin/env python3
"""`dstack gateway serve` driving a real WireGuard device: two network namespaces joined by a veth
pair, wireguard-go in each. Side A is the gateway's: `dstack gateway serve --wg-interface` inside
namespace A configures its device through the UAPI socket (private key from --data-dir/wg.key,
listen port, peers = the registered instances). Side B plays a CVM, configured with `wg set`
(wireguard-tools) from what RegisterCvm (debug API) answers. Checks: ping through the tunnel, the
gateway's device has B as a peer with a recent handshake, a second registration leaves B's
session and counters alone, and HTTPS through the gateway's proxy reaches an HTTP server that
listens only on B's tunnel address.

Nothing reaches the host's network: the underlay is 192.0.2.0/24 (TEST-NET-1) on a veth pair
whose two ends live in the two namespaces, and every listener is inside them. Needs root,
/dev/net/tun, ip, wireguard-go, wg (scripts/setup installs them); without them it fails and says
why. Namespaces, devices and processes are removed at the end, whatever happened.

    test_gateway_wireguard.py BUILD_DIR
"""

import json
import os
import re
import shutil
import subprocess
import time

import harness

BASE = "wg.test"
APP = "ab" * 20
INSTANCE = "cd" * 20
INSTANCE2 = "ef" * 20
UNDERLAY_A, UNDERLAY_B = "192.0.2.1", "192.0.2.2"
GATEWAY_WG_PORT = 51820
CVM_WG_PORT = 9182  # the port a CVM's dstack-wg0 listens on (spec gateway.md §5.4)
BACKEND_PORT = 8080


class Namespaces:
    """Two network namespaces with a veth pair between them and a wireguard-go device in each."""

    def __init__(self, h):
        self.h = h
        suffix = os.urandom(3).hex()
        # Unique names: /var/run/wireguard/ is shared by every namespace on this host.
        self.ns_a, self.ns_b = f"dgwA-{suffix}", f"dgwB-{suffix}"
        self.wg_a, self.wg_b = f"wga{suffix}", f"wgb{suffix}"
        self.veth_a, self.veth_b = f"va{suffix}", f"vb{suffix}"
        self.processes = []
        self.made = []

    def ip(self, *args, ns=None, check=True):
        cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
        r = self.h.run(cmd, timeout=20)
        if check:
            harness.expect(r.rc == 0, r)
        return r

    def up(self):
        for ns in (self.ns_a, self.ns_b):
            self.ip("ip", "netns", "add", ns)
            self.made.append(ns)
            self.ip("ip", "link", "set", "lo", "up", ns=ns)
        self.ip("ip", "link", "add", self.veth_a, "netns", self.ns_a, "type", "veth", "peer", "name", self.veth_b,
                "netns", self.ns_b)
        for ns, dev, addr in ((self.ns_a, self.veth_a, UNDERLAY_A), (self.ns_b, self.veth_b, UNDERLAY_B)):
            self.ip("ip", "addr", "add", f"{addr}/24", "dev", dev, ns=ns)
            self.ip("ip", "link", "set", dev, "up", ns=ns)
        for ns, dev in ((self.ns_a, self.wg_a), (self.ns_b, self.wg_b)):
            self.start_wireguard_go(ns, dev)

    def start_wireguard_go(self, ns, dev):
        log = open(os.path.join(self.h.tmp, f"wireguard-go-{dev}.log"), "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "wireguard-go", "-f", dev], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=harness._die_with_parent)
        log.close()
        self.processes.append(proc)
        socket_path = f"/var/run/wireguard/{dev}.sock"
        deadline = time.monotonic() + 10
        while not os.path.exists(socket_path):
            harness.expect(proc.poll() is None, f"wireguard-go {dev} exited with {proc.returncode}")
            harness.expect(time.monotonic() < deadline, f"wireguard-go made no {socket_path} within 10 s")
            time.sleep(0.05)

    def popen(self, ns, cmd, name):
        log = open(os.path.join(self.h.tmp, f"{name}.log"), "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=harness._die_with_parent)
        log.close()
        self.processes.append(proc)
        return proc

    def down(self):
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for ns in self.made:  # takes the veth pair and the tun devices with it
            self.ip("ip", "netns", "del", ns, check=False)
        for dev in (self.wg_a, self.wg_b):
            try:
                os.unlink(f"/var/run/wireguard/{dev}.sock")
            except FileNotFoundError:
                pass


def ns_curl(h, ns, url, *extra, body=None, headers=(), timeout=15):
    """curl inside a namespace (the gateway's listeners are on that namespace's loopback)."""
    cmd = ["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code}", *extra]
    for header in headers:
        cmd += ["-H", header]
    if body is not None:
        cmd += ["--data-binary", "@-"]
    r = h.run(cmd + [url], stdin=body, timeout=timeout + 10)
    text, _, status = r.out.rpartition("\n")
    return (int(status) if r.rc == 0 and status.isdigit() else 0), text, r


def ns_post_json(h, ns, address, path, payload, token=None):
    headers = ["Content-Type: application/json"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    status, text, r = ns_curl(h, ns, f"http://{address.host}:{address.port}{path}", body=json.dumps(payload),
                              headers=headers)
    harness.expect(status == 200, f"{path}: {status} {text[:1000]} {r.err[-500:]}")
    return json.loads(text)


def wg_dump(h, ns, dev):
    """`wg show DEV dump`: {public key: (endpoint, allowed ips, latest handshake, rx, tx, keepalive)}."""
    r = h.run(["ip", "netns", "exec", ns, "wg", "show", dev, "dump"], timeout=10)
    harness.expect(r.rc == 0, r)
    lines = r.out.strip().splitlines()
    peers = {}
    for line in lines[1:]:
        key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peers[key] = {"endpoint": endpoint, "allowed_ips": allowed, "handshake": int(handshake), "rx": int(rx),
                      "tx": int(tx), "keepalive": keepalive}
    return lines[0].split("\t"), peers


# ICMP echo from inside a namespace (a raw socket: root), so that no ping binary is needed: prints
# how many of COUNT echoes to DEST were answered and exits 0 when all were.
PING = r"""
import os, socket, struct, sys, time
dest, count = sys.argv[1], int(sys.argv[2])
def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
ident, answered = os.getpid() & 0xFFFF, 0
for seq in range(count):
    payload = os.urandom(32)
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload, (dest, 0))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            packet, (source, _) = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = packet[(packet[0] & 15) * 4:]
        if source == dest and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq) and icmp[8:] == payload:
            answered += 1
            break
    time.sleep(0.2)
print(f"{answered}/{count} echoes from {dest} answered")
sys.exit(0 if answered == count else 1)
"""


def ping(h, ns, dest, count=3):
    r = h.run(["ip", "netns", "exec", ns, "python3", "-c", PING, dest, str(count)], timeout=30)
    harness.expect(r.rc == 0, r)


def wait_for(what, predicate, timeout=20, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        harness.expect(time.monotonic() < deadline, f"{what}: not within {timeout} s")
        time.sleep(interval)


def wg_keypair(h):
    private = h.run(["wg", "genkey"], timeout=10)
    harness.expect(private.rc == 0, private)
    public = h.run(["wg", "pubkey"], stdin=private.out, timeout=10)
    harness.expect(public.rc == 0, public)
    return private.out.strip(), public.out.strip()


def main(h):
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces and TUN devices need CAP_NET_ADMIN)")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun (wireguard-go makes a TUN device)")
    for tool in ("ip", "wireguard-go", "wg", "curl"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (scripts/setup installs wireguard-go and wireguard-tools)")
    if missing:
        h.check("setup: what a real WireGuard tunnel needs is here", False, "missing: " + "; ".join(missing))
        return
    net = Namespaces(h)
    try:
        with h.case("two namespaces, a veth pair and a wireguard-go device in each"):
            net.up()
        if h.failed:
            return
        run(h, net)
    finally:
        net.down()
        left = h.run(["ip", "netns", "list"], timeout=10).out
        h.check("cleanup: both namespaces are gone", net.ns_a not in left and net.ns_b not in left, left)


def run(h, net):
    data = h.tmpdir("gateway-data")
    token = "t0ken-" + os.urandom(8).hex()
    token_file = os.path.join(h.tmp, "admin-token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    seal_file = os.path.join(h.tmp, "seal.key")
    with open(seal_file, "w") as f:
        f.write(os.urandom(32).hex())
    # The gateway's tunnel address, as upstream's setup_wireguard gives it (spec §6.1).
    net.ip("ip", "addr", "add", "10.0.0.1/24", "dev", net.wg_a, ns=net.ns_a)
    net.ip("ip", "link", "set", net.wg_a, "up", ns=net.ns_a)
    cvm_private, cvm_public = wg_keypair(h)
    cmd = ["ip", "netns", "exec", net.ns_a, h.dstack, "gateway", "serve", "--proxy-listen", "127.0.0.1:0",
           "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token-file", token_file,
           "--debug-listen", "127.0.0.1:0", "--base-domain", BASE, "--data-dir", data, "--seal-key-file", seal_file,
           "--wg-interface", net.wg_a, "--wg-ip", "10.0.0.1/24", "--wg-reserved-net", "10.0.0.1/32",
           "--wg-client-range", "10.0.0.0/25", "--wg-listen-port", str(GATEWAY_WG_PORT),
           "--wg-endpoint", f"{UNDERLAY_A}:{GATEWAY_WG_PORT}"]
    with h.server(cmd, count=4, name="dstack gateway serve (in namespace A)", timeout=30) as gw:
        proxy, _rpc, adm, dbg = gw.addresses[:4]
        ns_a, ns_b = net.ns_a, net.ns_b
        gateway_public = None

        with h.case("the gateway configures its device: wg.key's public key and the listen port, as Status says"):
            status = ns_post_json(h, ns_a, adm, "/prpc/Admin.Status?json", {}, token=token)
            gateway_public = status["nodes"][0]["wg_public_key"]
            key_file = os.path.join(data, "wg.key")
            harness.expect(os.path.isfile(key_file) and (os.stat(key_file).st_mode & 0o777) == 0o600,
                           f"{key_file} missing or not 0600")
            derived = h.run(["wg", "pubkey"], stdin=open(key_file).read(), timeout=10)
            harness.expect(derived.rc == 0 and derived.out.strip() == gateway_public,
                           f"wg pubkey < wg.key = {derived.out.strip()!r}, Status says {gateway_public!r}")

            def configured():
                interface, _ = wg_dump(h, ns_a, net.wg_a)
                return interface[1] == gateway_public and interface[2] == str(GATEWAY_WG_PORT)
            wait_for("the gateway sets the device's key and port", configured)

        with h.case("debug RegisterCvm with the CVM\'s key: 10.0.0.2; the gateway\'s device gets it as a peer"):
            policy = {"restrict_mode": True, "ports": [{"port": BACKEND_PORT, "pp": False}]}
            reply = ns_post_json(h, ns_a, dbg, "/prpc/RegisterCvm?json",
                                 {"client_public_key": cvm_public, "app_id": APP, "instance_id": INSTANCE,
                                  "port_policy": policy})
            wg = reply["wg"]
            harness.expect(wg["client_ip"] == "10.0.0.2", reply)
            status = ns_post_json(h, ns_a, adm, "/prpc/Admin.Status?json", {}, token=token)
            node = status["nodes"][0]
            harness.expect(node["wg_endpoint"] == f"{UNDERLAY_A}:{GATEWAY_WG_PORT}" and node["wg_ip"] == "10.0.0.1/24", node)

            def has_peer():
                _, peers = wg_dump(h, ns_a, net.wg_a)
                peer = peers.get(cvm_public)
                return peer if peer and peer["allowed_ips"] == "10.0.0.2/32" else None
            peer = wait_for("the CVM's peer on the gateway's device", has_peer)
            harness.expect(peer["keepalive"] == "25", peer)

        # Side B as a CVM writes it (spec §5.4): its address /32, the gateway as its one peer.
        key_b = os.path.join(h.tmp, "cvm.key")
        with open(key_b, "w") as f:
            f.write(cvm_private + "\n")
        os.chmod(key_b, 0o600)
        net.ip("wg", "set", net.wg_b, "private-key", key_b, "listen-port", str(CVM_WG_PORT), "peer", gateway_public,
               "allowed-ips", "10.0.0.1/32", "endpoint", f"{UNDERLAY_A}:{GATEWAY_WG_PORT}",
               "persistent-keepalive", "25", ns=ns_b)
        net.ip("ip", "addr", "add", "10.0.0.2/32", "dev", net.wg_b, ns=ns_b)
        net.ip("ip", "link", "set", net.wg_b, "up", ns=ns_b)
        net.ip("ip", "route", "add", "10.0.0.1/32", "dev", net.wg_b, ns=ns_b)

        before = None
        with h.case("ping through the tunnel both ways; the gateway's device has B with a recent handshake"):
            ping(h, ns_b, "10.0.0.1")
            ping(h, ns_a, "10.0.0.2")
            _, peers = wg_dump(h, ns_a, net.wg_a)
            before = peers[cvm_public]
            now = time.time()
            harness.expect(0 < now - before["handshake"] < 60, f"handshake {before['handshake']}, now {now:.0f}")
            harness.expect(before["endpoint"] == f"{UNDERLAY_B}:{CVM_WG_PORT}", before)  # roaming learnt it
            harness.expect(before["rx"] > 0 and before["tx"] > 0, before)

        with h.case("a second registration adds a peer and leaves the first one's session and counters alone"):
            harness.expect(before, "no first peer to compare with")
            _, other_public = wg_keypair(h)
            reply = ns_post_json(h, ns_a, dbg, "/prpc/RegisterCvm?json",
                                 {"client_public_key": other_public, "app_id": APP, "instance_id": INSTANCE2,
                                  "port_policy": {"restrict_mode": True, "ports": []}})
            harness.expect(reply["wg"]["client_ip"] == "10.0.0.3", reply)

            def two_peers():
                _, peers = wg_dump(h, ns_a, net.wg_a)
                return peers if other_public in peers else None
            peers = wait_for("the second peer on the gateway's device", two_peers)
            harness.expect(peers[other_public]["allowed_ips"] == "10.0.0.3/32", peers)
            after = peers[cvm_public]
            harness.expect(after["handshake"] == before["handshake"], f"handshake reset: {before} -> {after}")
            harness.expect(after["rx"] >= before["rx"] and after["tx"] >= before["tx"], f"counters reset: {before} -> {after}")
            harness.expect(after["endpoint"] == before["endpoint"] and after["allowed_ips"] == "10.0.0.2/32", after)
            # A re-registration of the first instance (every CVM does it every 3 minutes) changes nothing either.
            ns_post_json(h, ns_a, dbg, "/prpc/RegisterCvm?json",
                         {"client_public_key": cvm_public, "app_id": APP, "instance_id": INSTANCE,
                          "port_policy": {"restrict_mode": True, "ports": [{"port": BACKEND_PORT, "pp": False}]}})
            time.sleep(4.5)  # two ticks of the gateway's WireGuard loop
            _, peers = wg_dump(h, ns_a, net.wg_a)
            again = peers[cvm_public]
            harness.expect(again["handshake"] == before["handshake"] and again["rx"] >= after["rx"], f"{after} -> {again}")
            ping(h, ns_b, "10.0.0.1", count=2)

        with h.case("HTTPS through the gateway's proxy reaches an app listening only on the CVM's tunnel address"):
            www = h.tmpdir("www")
            secret = os.urandom(16).hex()
            with open(os.path.join(www, "token.txt"), "w") as f:
                f.write(secret)
            backend = net.popen(ns_b, ["python3", "-m", "http.server", "--bind", "10.0.0.2", "--directory", www,
                                       str(BACKEND_PORT)], "backend")

            def backend_up():
                harness.expect(backend.poll() is None, "the HTTP backend in namespace B exited")
                r = h.run(["ip", "netns", "exec", ns_b, "curl", "-s", "-o", "/dev/null", "--max-time", "2",
                           f"http://10.0.0.2:{BACKEND_PORT}/"], timeout=10)
                return r.rc == 0
            wait_for("the HTTP backend in namespace B", backend_up, timeout=15)
            # B's tunnel address is on wgB only: from A it is reachable through the tunnel alone.
            by_instance = f"{INSTANCE}-{BACKEND_PORT}.{BASE}"
            status, body, r = ns_curl(h, ns_a, f"https://{by_instance}:{proxy.port}/token.txt", "-k", "--resolve",
                                      f"{by_instance}:{proxy.port}:127.0.0.1")
            harness.expect(status == 200 and body == secret, f"by instance id: {status} {body[:300]!r} {r.err[-800:]}")
            # By app id the gateway picks among instances with a recent handshake, which it reads
            # from the device every 10 s (spec §3.9, §6.4): within one refresh the app is served.
            by_app = f"{APP}-{BACKEND_PORT}.{BASE}"

            def served_by_app():
                status, body, _ = ns_curl(h, ns_a, f"https://{by_app}:{proxy.port}/token.txt", "-k", "--resolve",
                                          f"{by_app}:{proxy.port}:127.0.0.1")
                return status == 200 and body == secret
            wait_for("the app served by app id once the gateway has seen the handshake", served_by_app, timeout=15,
                     interval=1)
            _, peers = wg_dump(h, ns_a, net.wg_a)
            harness.expect(peers[cvm_public]["rx"] > before["rx"], "the request did not cross the tunnel")
            log = open(os.path.join(h.tmp, "backend.log"), errors="replace").read()
            harness.expect(re.search(r"10\.0\.0\.1 .*GET /token.txt", log), f"the backend did not see 10.0.0.1: {log[-500:]}")


if __name__ == "__main__":
    harness.main(main)
