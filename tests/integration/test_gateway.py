#!/usr/bin/env python3
"""`dstack gateway serve`'s data path on loopback, with real clients and backends: curl and
`openssl s_client` through the gateway for every label form, HTTP/2 with `g` (haproxy as the h2c
backend), passthrough to a TLS app, PROXY headers read by a real haproxy, custom domains through a
dnsmasq TXT record, the self-signed wildcard, the admin API, /metrics, the dashboard in headless
Chromium, and hostile clients (garbage, no SNI, unknown apps, slowloris, idle floods, oversized
hellos) refused while others are served.

Instances are registered through the debug API with WireGuard addresses from a pool inside
127.0.1.0/24: on Linux every 127/8 address is this host, so backends listening on 127.0.1.x stand
for CVMs behind the tunnel (test_gateway_wireguard.py runs the real tunnel).

    test_gateway.py BUILD_DIR
"""

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time

import harness

BASE = "gw.test"
APP = "aa" * 20
INSTANCE = "bb" * 20
APP2 = "cc" * 20
INSTANCE2 = "dd" * 20
INSTANCE_IP = "127.0.1.2"
PAYLOAD = b"dstack-gateway-proxy-test-0123456789abcdef"


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wg_key(n):
    import base64
    return base64.b64encode(bytes([n]) * 32).decode()


class Origin(http.server.BaseHTTPRequestHandler):
    """The app: /bytes/N answers N bytes of PAYLOAD repeated, /echo returns the body, / says who."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/bytes/"):
            n = int(self.path.split("/")[2])
            body = (PAYLOAD * (n // len(PAYLOAD) + 1))[:n]
        else:
            body = f"origin {self.server.label} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_origin(host, port, label, tls_context=None):
    server = ThreadingServer((host, port), Origin)
    server.label = label
    if tls_context:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class HalfCloseEcho:
    """Reads until EOF, then answers how many bytes it got and closes: proves the gateway forwards
    a client's half-close and still delivers the answer."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    def one(self, conn):
        with conn:
            total = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                total += len(data)
            conn.sendall(f"got {total}\n".encode())


def curl(h, url, *extra, resolve_port=None, timeout=20):
    host = re.match(r"https://([^:/]+)", url).group(1)
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code} %{http_version}",
           "--resolve", f"{host}:{resolve_port}:127.0.0.1", *extra, url]
    r = h.run(cmd, timeout=timeout + 10, text=False)
    out = r.out
    body, _, tail = out.rpartition(b"\n")
    parts = tail.decode(errors="replace").split()
    status = int(parts[0]) if parts and parts[0].isdigit() else 0
    version = parts[1] if len(parts) > 1 else ""
    return r, status, version, body


def admin(h, server_admin, method, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return harness.http_request(server_admin, "POST", f"/prpc/Admin.{method}?json",
                                json.dumps(body or {}).encode(), headers)


def tls_hello(server_name, size=None):
    """A ClientHello made by Python's ssl module (in memory), optionally padded."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_half_close(server_name, cafile, port, payload):
    """TLS over a socket we drive by hand (memory BIOs), so that after sending we can end our TCP
    side (SHUT_WR) and still read the answer."""
    ctx = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        def flush():
            data = outgoing.read()
            if data:
                sock.sendall(data)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                data = sock.recv(65536)
                harness.expect(data, "the gateway closed during the handshake")
                incoming.write(data)
        flush()
        obj.write(payload)
        flush()
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                answer += chunk
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                if not data:
                    break
                incoming.write(data)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
        return answer


def make_tls_context(h, name):
    key = os.path.join(h.tmp, f"{name}.key")
    crt = os.path.join(h.tmp, f"{name}.crt")
    r = h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}", "-addext",
               f"subjectAltName=DNS:{name}"])
    harness.expect(r.rc == 0, r)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx, crt


def haproxy_config(path, pp_port, h2_port):
    with open(path, "w") as f:
        f.write(f"""global
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 20s
  timeout server 20s
frontend pp
  bind {INSTANCE_IP}:{pp_port} accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%[src] src_port=%[src_port] dst_port=%[dst_port]\\n"
frontend h2c
  bind {INSTANCE_IP}:{h2_port} proto h2
  http-request return status 200 content-type text/plain lf-string "h2 ok %[req.ver]\\n"
""")


def main(h):
    for tool in ["haproxy", "openssl", "curl"]:
        harness.expect(shutil.which(tool), f"{tool} is not installed (scripts/setup installs it)")
    p_plain, p_big, p_tls, p_pp, p_h2, p_half, p_other = (free_port(INSTANCE_IP) for _ in range(7))
    start_origin(INSTANCE_IP, p_plain, "plain")
    start_origin("127.0.0.1", p_big, "localhost")
    backend_tls, backend_crt = make_tls_context(h, "app.backend")
    start_origin(INSTANCE_IP, p_tls, "tls", backend_tls)
    HalfCloseEcho(INSTANCE_IP, p_half)
    hap_cfg = os.path.join(h.tmp, "haproxy.cfg")
    haproxy_config(hap_cfg, p_pp, p_h2)
    hap = subprocess.Popen(["haproxy", "-f", hap_cfg, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        run(h, p_plain, p_big, p_tls, p_pp, p_h2, p_half, p_other, backend_crt)
    finally:
        hap.terminate()
        try:
            hap.wait(timeout=5)
        except subprocess.TimeoutExpired:
            hap.kill()


def gateway_cmd(h, data, token_file, seal_file, *extra):
    return [h.dstack, "gateway", "serve", "--proxy-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
            "--admin-listen", "127.0.0.1:0", "--admin-token-file", token_file, "--debug-listen", "127.0.0.1:0",
            "--base-domain", BASE, "--insecure-localhost-backend", "--no-wireguard", "--data-dir", data,
            "--seal-key-file", seal_file, "--wg-ip", "127.0.1.1/24", "--wg-reserved-net", "127.0.1.1/32",
            "--wg-client-range", "127.0.1.0/25", "--handshake-timeout", "2", "--max-connections-per-client", "200",
            *extra]


def run(h, p_plain, p_big, p_tls, p_pp, p_h2, p_half, p_other, backend_crt):
    data = h.tmpdir("gateway-data")
    token = "t0ken-" + os.urandom(8).hex()
    token_file = os.path.join(h.tmp, "admin-token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    seal_file = os.path.join(h.tmp, "seal.key")
    with open(seal_file, "w") as f:
        f.write(os.urandom(32).hex())
    cmd = gateway_cmd(h, data, token_file, seal_file, "--idle-timeout", "3")
    self_signed_sha = None
    with h.server(cmd, count=4, name="gateway", timeout=30) as gw:
        proxy, rpc, adm, dbg = gw.addresses[:4]
        pp = proxy.port

        with h.case("self-signed wildcard for the base domain at start: served by TLS, reported by Status and /metrics"):
            r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pp}", "-servername", f"localhost-{p_big}.{BASE}",
                       "-showcerts"], stdin="", timeout=20)
            harness.expect("BEGIN CERTIFICATE" in r.out, r)
            pem = r.out[r.out.index("-----BEGIN CERTIFICATE-----"):r.out.index("-----END CERTIFICATE-----") + 25] + "\n"
            cert_file = os.path.join(h.tmp, "self-signed.pem")
            with open(cert_file, "w") as f:
                f.write(pem)
            x = h.run(["openssl", "x509", "-in", cert_file, "-noout", "-subject", "-issuer", "-ext", "subjectAltName"])
            harness.expect(f"*.{BASE}" in x.out and "self-signed" in x.out, x)
            status = admin(h, adm, "Status", token=token)
            harness.expect(status.status == 200, status)
            report = status.json()
            certs = report["certificates"]
            harness.expect(len(certs) == 1 and certs[0]["self_signed"] and certs[0]["domain"] == BASE, certs)
            der = subprocess.run(["openssl", "x509", "-in", cert_file, "-outform", "DER"], capture_output=True).stdout
            self_signed_sha = hashlib.sha256(der).hexdigest()
            harness.expect(certs[0]["sha256"] == self_signed_sha, f"{certs[0]['sha256']} != {self_signed_sha}")
            m = harness.http_request(adm, "GET", "/metrics", headers={"X-Admin-Token": token})
            harness.expect(f'dstack_gateway_certificate_self_signed{{domain="{BASE}"}} 1' in m.text(), m.text()[:2000])

        cacert = ["--cacert", os.path.join(h.tmp, "self-signed.pem")]

        with h.case("admin auth: none and a wrong token are 401 with the realm; Bearer, X-Admin-Token, Basic, ?token work"):
            r = admin(h, adm, "Status")
            harness.expect(r.status == 401 and "dstack-gateway admin" in r.headers.get("www-authenticate", ""), r)
            r = admin(h, adm, "Status", token="wrong")
            harness.expect(r.status == 401, r)
            r = harness.http_request(adm, "POST", "/prpc/Admin.Status?json", b"{}", {"X-Admin-Token": token})
            harness.expect(r.status == 200, r)
            import base64
            basic = base64.b64encode(f"admin:{token}".encode()).decode()
            r = harness.http_request(adm, "POST", "/Status?json", b"{}", {"Authorization": f"Basic {basic}"})
            harness.expect(r.status == 200, r)
            r = harness.http_request(adm, "GET", f"/?token={token}")
            harness.expect(r.status == 200 and b"dstack gateway" in r.body, r)
            r = harness.http_request(adm, "POST", f"/prpc/Admin.Status?json&token={token}", b"{}")
            harness.expect(r.status == 401, "a POST must not take ?token=")

        with h.case("terminate: curl through localhost-<port>.base, 1 KiB and 1 MiB byte-exact, self-signed chain verified"):
            for n in (1024, 1 << 20):
                r, status, _, body = curl(h, f"https://localhost-{p_big}.{BASE}:{pp}/bytes/{n}", *cacert, resolve_port=pp)
                expected = (PAYLOAD * (n // len(PAYLOAD) + 1))[:n]
                harness.expect(status == 200 and body == expected, f"{r} {status} {len(body)}")

        with h.case("terminate: TLS 1.2 and TLS 1.3 both negotiate (openssl s_client)"):
            for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pp}", "-servername",
                           f"localhost-{p_big}.{BASE}", flag, "-brief"], stdin="", timeout=20)
                harness.expect(f"Protocol version: {name}" in r.err + r.out, f"{flag}: {r}")

        with h.case("debug RegisterCvm: an instance gets the first pool address; again: the same one"):
            policy = {"restrict_mode": True, "ports": [{"port": p_plain, "pp": False}, {"port": p_tls, "pp": False},
                                                       {"port": p_pp, "pp": True}, {"port": p_h2, "pp": False},
                                                       {"port": p_half, "pp": False}]}
            body = {"client_public_key": wg_key(1), "app_id": APP, "instance_id": INSTANCE, "port_policy": policy}
            for _ in range(2):
                r = harness.http_request(dbg, "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
                harness.expect(r.status == 200 and r.json()["wg"]["client_ip"] == INSTANCE_IP, r)

        with h.case("routing by app id and by instance id (<id>-<port>), plaintext to the app"):
            for ident in (APP, INSTANCE):
                r, status, version, body = curl(h, f"https://{ident}-{p_plain}.{BASE}:{pp}/hello", *cacert, resolve_port=pp)
                harness.expect(status == 200 and body == b"origin plain /hello" and version == "1.1",
                               f"{ident}: {r} {status} {version} {body[:200]}")

        with h.case("passthrough (-<port>s): the app's own certificate reaches curl, the gateway's does not"):
            r, status, _, body = curl(h, f"https://{APP}-{p_tls}s.{BASE}:{pp}/", "-k", "-v", resolve_port=pp)
            harness.expect(status == 200 and body == b"origin tls /", f"{r} {status}")
            harness.expect("CN=app.backend" in r.err.decode(errors="replace"), r.err[-2000:])

        with h.case("h2 with -<port>g: ALPN h2 and HTTP/2 to an h2c haproxy; without g, HTTP/1.1 only"):
            r, status, version, body = curl(h, f"https://{APP}-{p_h2}g.{BASE}:{pp}/", *cacert, "--http2",
                                            resolve_port=pp)
            harness.expect(status == 200 and version == "2" and body.startswith(b"h2 ok"), f"{r} {status} {version} {body}")
            r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pp}", "-servername", f"{APP}-{p_plain}.{BASE}",
                       "-alpn", "h2,http/1.1", "-brief"], stdin="", timeout=20)
            harness.expect("ALPN protocol: h2" not in r.out + r.err, r)

        with h.case("PROXY header to a pp port: haproxy (accept-proxy) sees curl's own address and port"):
            r, status, _, body = curl(h, f"https://{APP}-{p_pp}.{BASE}:{pp}/", *cacert, "-w", "%{local_port}",
                                      resolve_port=pp)
            text = r.out.decode(errors="replace")
            m = re.search(r"src=(\S+) src_port=(\d+) dst_port=(\d+)", text)
            harness.expect(m, text)
            local_port = re.search(r"(\d+)\s*$", text.splitlines()[-1]) if text else None
            harness.expect(m.group(1) == "127.0.0.1" and m.group(3) == str(pp), text)
            harness.expect(local_port and m.group(2) == local_port.group(1), f"src_port {m.group(2)} vs curl's {text}")

        with h.case("port policy: a port the app does not list is refused; an admin override opens it, clearing closes it"):
            r, status, _, _ = curl(h, f"https://{APP}-{p_other}.{BASE}:{pp}/", *cacert, resolve_port=pp, timeout=10)
            harness.expect(status == 0 and r.rc != 0, f"expected a refusal: {r}")
            start_origin(INSTANCE_IP, p_other, "other")
            r = admin(h, adm, "SetInstancePortPolicy", {"instance_id": INSTANCE, "port_policy": {"restrict_mode": False}},
                      token=token)
            harness.expect(r.status == 200, r)
            _, status, _, body = curl(h, f"https://{APP}-{p_other}.{BASE}:{pp}/", *cacert, resolve_port=pp)
            harness.expect(status == 200 and body == b"origin other /", f"{status} {body}")
            r = admin(h, adm, "GetInstancePortPolicy", {"instance_id": INSTANCE}, token=token)
            harness.expect(r.status == 200 and r.json()["source"] == "admin", r)
            r = admin(h, adm, "ClearInstancePortPolicy", {"instance_id": INSTANCE}, token=token)
            harness.expect(r.status == 200, r)
            r, status, _, _ = curl(h, f"https://{APP}-{p_other}.{BASE}:{pp}/", *cacert, resolve_port=pp, timeout=10)
            harness.expect(status == 0, f"expected a refusal after clearing: {r}")

        with h.case("an instance registered without a port policy is denied (fail closed) until one is set"):
            body = {"client_public_key": wg_key(2), "app_id": APP2, "instance_id": INSTANCE2}
            r = harness.http_request(dbg, "POST", "/prpc/RegisterCvm?json", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
            harness.expect(r.status == 200 and r.json()["wg"]["client_ip"] == "127.0.1.3", r)
            r, status, _, _ = curl(h, f"https://{APP2}-{p_plain}.{BASE}:{pp}/", *cacert, resolve_port=pp, timeout=10)
            harness.expect(status == 0, f"expected a refusal: {r}")

        with h.case("half-close through termination: the client's EOF reaches the app, its answer still comes back"):
            answer = tls_half_close(f"{APP}-{p_half}.{BASE}", os.path.join(h.tmp, "self-signed.pem"), pp, b"x" * 100000)
            harness.expect(answer == b"got 100000\n", f"answer {answer[:200]!r}")

        with h.case("the gateway's own name: gateway.<base>/health, /.dstack/index and /.dstack/acme-info"):
            _, status, _, _ = curl(h, f"https://gateway.{BASE}:{pp}/health", *cacert, resolve_port=pp)
            harness.expect(status == 200, status)
            _, status, _, body = curl(h, f"https://gateway.{BASE}:{pp}/.dstack/index", *cacert, resolve_port=pp)
            harness.expect(status == 200 and json.loads(body)["type"] == "dstack gateway", body)
            _, status, _, body = curl(h, f"https://gateway.{BASE}:{pp}/.dstack/acme-info", *cacert, resolve_port=pp)
            info = json.loads(body)
            harness.expect(status == 200 and "quoted_hist_keys" in info and info["hist_keys"] == [], body)

        with h.case("Info over the RPC: base_domain, external_port, prefix; /health; X-App-Version"):
            r = harness.http_request(rpc, "POST", "/prpc/Info?json", b"{}", {"Content-Type": "application/json"})
            harness.expect(r.status == 200 and r.json()["base_domain"] == BASE and r.json()["external_port"] == 443, r)
            harness.expect("x-app-version" in r.headers, r.headers)
            r = harness.http_request(rpc, "POST", "/prpc/RegisterCvm?json", json.dumps({"client_public_key": wg_key(9)}).encode(),
                                     {"Content-Type": "application/json"})
            harness.expect(r.status == 400 and "no attestation provided" in r.text(), r)

        with h.case("refusals: plain HTTP gets a 400 that says TLS; no SNI, an unknown app and a bad label get a TLS alert"):
            s = socket.create_connection(("127.0.0.1", pp), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = harness.read_until_close(s)
            s.close()
            harness.expect(harness.http_status(raw) == 400 and b"speaks TLS" in raw, raw[:300])
            r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pp}", "-noservername", "-brief"], stdin="", timeout=20)
            harness.expect("unrecognized name" in (r.out + r.err).lower() or "alert" in (r.out + r.err).lower(), r)
            for label in ("ff" * 20 + "-80", "a-b-c", "x-0s"):
                r = h.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pp}", "-servername", f"{label}.{BASE}", "-brief"],
                          stdin="", timeout=20)
                harness.expect("alert" in (r.out + r.err).lower(), f"{label}: {r}")

        with h.case("an oversized ClientHello (17 KiB of padding) is refused; the gateway stays up"):
            hello = bytearray(tls_hello(f"localhost-{p_big}.{BASE}"))
            # One handshake record declaring 17 KiB: more than a ClientHello may take.
            record = b"\x16\x03\x01" + (17 * 1024).to_bytes(2, "big") + b"\x01" + (17 * 1024 - 4).to_bytes(3, "big")
            s = socket.create_connection(("127.0.0.1", pp), timeout=10)
            try:
                s.sendall(record + b"\x00" * (17 * 1024 - 4))
            except OSError:
                pass
            s.settimeout(10)
            try:
                rest = s.recv(100)
            except OSError:
                rest = b""
            s.close()
            harness.expect(len(rest) < 100, rest)
            _, status, _, _ = curl(h, f"https://localhost-{p_big}.{BASE}:{pp}/bytes/10", *cacert, resolve_port=pp)
            harness.expect(status == 200, status)

        with h.case("slowloris: a ClientHello trickled a byte at a time is cut at the handshake deadline; others are served"):
            hello = tls_hello(f"localhost-{p_big}.{BASE}")
            s = socket.create_connection(("127.0.0.1", pp), timeout=10)
            start = time.monotonic()
            closed = False
            for i in range(len(hello)):
                try:
                    s.sendall(hello[i:i + 1])
                except OSError:
                    closed = True
                    break
                if i == 3:
                    _, status, _, _ = curl(h, f"https://localhost-{p_big}.{BASE}:{pp}/bytes/10", *cacert, resolve_port=pp)
                    harness.expect(status == 200, "another client was not served during the trickle")
                time.sleep(0.25)
                if time.monotonic() - start > 6:
                    break
            s.settimeout(5)
            try:
                closed = closed or s.recv(1) == b""
            except OSError:
                closed = True
            s.close()
            elapsed = time.monotonic() - start
            harness.expect(closed and elapsed < 6, f"closed={closed} after {elapsed:.1f} s (handshake timeout 2 s)")

        with h.case("1000 idle connections from one address: the per-client limit (200) refuses the rest; 127.0.0.2 is served"):
            idle = []
            try:
                for _ in range(1000):
                    s = socket.socket()
                    s.bind(("127.0.0.3", 0))
                    s.connect(("127.0.0.1", pp))
                    idle.append(s)
                time.sleep(0.5)
                open_count = 0
                for s in idle:
                    s.setblocking(False)
                    try:
                        if s.recv(1):
                            open_count += 1
                    except BlockingIOError:
                        open_count += 1
                    except OSError:
                        pass
                harness.expect(open_count <= 200, f"{open_count} idle connections kept open (limit 200)")
                r, status, _, _ = curl(h, f"https://localhost-{p_big}.{BASE}:{pp}/bytes/10", *cacert, "--interface",
                                       "127.0.0.2", resolve_port=pp)
                harness.expect(status == 200, r)
            finally:
                for s in idle:
                    s.close()

        with h.case("idle timeout (3 s): a relayed connection with no traffic is closed, an active one is not"):
            ctx = ssl.create_default_context(cafile=os.path.join(h.tmp, "self-signed.pem"))
            with socket.create_connection(("127.0.0.1", pp), timeout=15) as raw:
                with ctx.wrap_socket(raw, server_hostname=f"localhost-{p_big}.{BASE}") as s:
                    s.sendall(b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n")
                    first = b""
                    while not first.endswith(b"\r\n\r\n" + PAYLOAD[:5]):
                        chunk = s.recv(4096)
                        harness.expect(chunk, f"closed early: {first!r}")
                        first += chunk
                    harness.expect(b"200" in first, first)
                    start = time.monotonic()
                    s.settimeout(12)
                    try:
                        rest = s.recv(4096)
                    except (ssl.SSLError, OSError):
                        rest = b""
                    elapsed = time.monotonic() - start
            harness.expect(rest == b"" and 2.5 <= elapsed <= 6, f"closed after {elapsed:.1f} s, read {rest[:80]!r}")

        with h.case("dashboard: headless Chromium renders the instances and the self-signed certificate (screenshot kept)"):
            chromium = shutil.which("chromium")
            harness.expect(chromium, "chromium is not installed (scripts/setup installs it)")
            url = f"http://127.0.0.1:{adm.port}/?token={token}"
            profile = h.tmpdir("chromium-profile")
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}"]
            r = h.run([chromium, *flags, "--dump-dom", url], timeout=60)
            harness.expect(r.rc == 0 and INSTANCE in r.out and "self-signed" in r.out and f"*.{BASE}" in r.out, r)
            shot = os.path.join(harness.ROOT, "build-logs", "gateway-dashboard.png")
            os.makedirs(os.path.dirname(shot), exist_ok=True)
            r = h.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,800", url], timeout=60)
            harness.expect(r.rc == 0 and os.path.getsize(shot) > 1000, r)

        with h.case("/metrics: connections and refusals counted"):
            m = harness.http_request(adm, "GET", "/metrics", headers={"X-Admin-Token": token}).text()
            accepted = int(re.search(r"^dstack_gateway_connections_accepted_total (\d+)", m, re.M).group(1))
            terminated = int(re.search(r"^dstack_gateway_connections_terminated_total (\d+)", m, re.M).group(1))
            passed = int(re.search(r"^dstack_gateway_connections_passthrough_total (\d+)", m, re.M).group(1))
            harness.expect(accepted > 1000 and terminated >= 5 and passed >= 1, m[:3000])
            harness.expect('reason="limit"' in m and "dstack_gateway_instances 2" in m, m[:3000])

    with h.case("restart: the instance keeps its address and the same self-signed certificate is served"):
        with h.server(gateway_cmd(h, data, token_file, seal_file), count=4, name="gateway (restarted)", timeout=30) as gw:
            proxy, rpc, adm, dbg = gw.addresses[:4]
            report = admin(h, adm, "Status", token=token).json()
            hosts = {host["instance_id"]: host for host in report["hosts"]}
            harness.expect(hosts.get(INSTANCE, {}).get("ip") == INSTANCE_IP, report)
            harness.expect(report["certificates"][0]["sha256"] == self_signed_sha, report["certificates"])
            _, status, _, body = curl(h, f"https://{APP}-{p_plain}.{BASE}:{proxy.port}/again",
                                      "--cacert", os.path.join(h.tmp, "self-signed.pem"), resolve_port=proxy.port)
            harness.expect(status == 200 and body == b"origin plain /again", f"{status} {body}")
            # The store on disk: a snapshot (after compactions) and a journal of JSON lines, 0600.
            values = []
            for name in ("state.json", "state.json.journal"):
                path = os.path.join(data, name)
                if not os.path.exists(path):
                    continue
                mode = os.stat(path).st_mode & 0o777
                harness.expect(mode == 0o600, f"{name}: {oct(mode)}")
                with open(path) as f:
                    text = f.read()
                records = json.loads(text)["entries"] if name == "state.json" else \
                    [json.loads(line) for line in text.splitlines() if line.strip()]
                values += [base64.b64decode(e["value"]).decode(errors="replace") for e in records if e.get("value")]
            harness.expect(any("aes-256-gcm:" in v for v in values), "no sealed certificate key in the store")
            harness.expect(not any("PRIVATE KEY" in v for v in values), "a certificate key is stored in clear")

    with h.case("upstream's gateway.toml (--config): its keys are read, keys this build ignores are named"):
        config = os.path.join(h.tmp, "gateway.toml")
        proxy_port, admin_port = free_port(), free_port()
        with open(config, "w") as f:
            f.write(f"""
workers = 8
address = "127.0.0.1"
port = {free_port()}
[core]
set_ulimit = true
[core.admin]
enabled = true
address = "127.0.0.1"
port = {admin_port}
auth_token = "toml-token"
[core.wg]
ip = "127.0.1.1/24"
reserved_net = ["127.0.1.1/32"]
client_ip_range = "127.0.1.0/25"
[core.proxy]
listen_addr = "127.0.0.1"
listen_port = "{proxy_port}"
base_domain = "toml.test"
tls_crypto_provider = "aws-lc-rs"
[core.proxy.timeouts]
handshake = "3s"
idle = "10m"
write = "5s"
[core.sync]
data_dir = "{os.path.join(h.tmp, 'toml-data')}"
""")
        cmd = [h.dstack, "gateway", "--config", config, "--no-wireguard", "--seal-key-file", seal_file]
        with h.server(cmd, count=3, name="gateway (gateway.toml)", timeout=30) as gw:
            harness.expect(gw.addresses[0].port == proxy_port and gw.addresses[2].port == admin_port, gw.addresses)
            r = harness.http_request(gw.addresses[2], "POST", "/prpc/Admin.Status?json", b"{}", {"X-Admin-Token": "toml-token"})
            harness.expect(r.status == 200 and r.json()["certificates"][0]["domain"] == "toml.test", r)
            log = gw.log_tail()
            harness.expect("tls_crypto_provider" in log and "write" in log, log)

    with h.case("custom domain: a _dstack-app-address TXT record (dnsmasq) routes to the app, passed through"):
        dns_port = free_port()
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        args = [dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={dns_port}", "--local=/example/",
                f"--txt-record=_dstack-app-address.shop.example,{APP}:{p_tls}", "--log-facility=-"]
        if os.geteuid() == 0:
            args.append("--user=root")
        dns = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            with h.server(gateway_cmd(h, data, token_file, seal_file, "--dns-server", f"127.0.0.1:{dns_port}"), count=4,
                          name="gateway (custom domains)", timeout=30) as gw:
                pp = gw.addresses[0].port
                r, status, _, body = curl(h, f"https://shop.example:{pp}/", "-k", "-v", resolve_port=pp)
                harness.expect(status == 200 and body == b"origin tls /", f"{r} {status}")
                harness.expect("CN=app.backend" in r.err.decode(errors="replace"), "not passed through")
                r, status, _, _ = curl(h, f"https://nothing.example:{pp}/", "-k", resolve_port=pp, timeout=10)
                harness.expect(status == 0, f"a name with no TXT record must be refused: {r}")
        finally:
            dns.terminate()
            dns.wait(timeout=5)


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
