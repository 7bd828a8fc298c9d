"""`dstack gateway certbot issue` against Debian's pebble (a real RFC 8555 server) and
pebble-challtestsrv (its DNS), with a Cloudflare API stand-in that forwards TXT records to
challtestsrv, as upstream's e2e test does with its mock Cloudflare. Pebble refuses 30% of nonces
(PEBBLE_WFE_NONCEREJECT), so every issuance also exercises the badNonce retry: ~40 signed requests
a run make a run without one refusal vanishingly unlikely.

Needs the Debian packages pebble and openssl. Everything listens on 127.0.0.1.
ACME_TEST_SHOW_LOGS=1 prints every certbot stderr and pebble's log.
"""
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness

TOKEN = "cf-token-Zq8v3Xw1SECRET"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise harness.Failure(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise harness.Failure(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def post_json(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


class Cloudflare:
    """Zones (one per page, so the client must page) and dns_records GET/POST/DELETE; TXT changes
    go to challtestsrv's management API, which pebble's DNS look-ups then see."""

    def __init__(self, challtestsrv):
        self.challtestsrv = challtestsrv
        self.zones = [{"id": "zone-local", "name": "local"}, {"id": "zone-test", "name": "test.local"},
                      {"id": "zone-other", "name": "other.local"}]
        self.records = {}  # id -> record (with "zone")
        self.log = []      # (method, path, body) of every authorized call
        self.next_id = 1
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self, method):
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.reply(403, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                                            "messages": [], "result": None})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                with outer.lock:
                    outer.log.append((method, url.path, query, body))
                    status, answer = outer.route(method, url.path.split("/"), query, body)
                self.reply(status, answer)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_DELETE(self):
                self.handle_any("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/client/v4"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def sync_txt(self, name):
        host = name.rstrip(".") + "."
        post_json(self.challtestsrv + "/clear-txt", {"host": host})
        for record in self.records.values():
            if record["type"] == "TXT" and record["name"] == name:
                post_json(self.challtestsrv + "/set-txt", {"host": host, "value": record["content"]})

    def route(self, method, parts, query, body):
        ok = lambda result, info=None: (200, {"success": True, "errors": [], "messages": [], "result": result,
                                              **({"result_info": info} if info else {})})
        # parts: ['', 'client', 'v4', 'zones', ...]
        parts = parts[3:]
        if parts == ["zones"] and method == "GET":
            page = int(query.get("page", "1"))
            if query.get("per_page") != "50":
                return 400, {"success": False, "errors": [{"code": 1, "message": "per_page must be 50"}]}
            zone = self.zones[page - 1: page]
            return ok(zone, {"page": page, "per_page": 1, "total_pages": len(self.zones), "count": len(zone)})
        if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
            zone = parts[1]
            if zone not in [z["id"] for z in self.zones]:
                return 404, {"success": False, "errors": [{"code": 7003, "message": "Could not route"}]}
            if len(parts) == 3 and method == "GET":
                found = [r for r in self.records.values() if r["zone"] == zone and r["name"] == query.get("name")]
                return ok(found, {"page": 1, "per_page": 100, "total_pages": 1, "count": len(found)})
            if len(parts) == 3 and method == "POST":
                record_id = f"rec{self.next_id}"
                self.next_id += 1
                record = {"id": record_id, "zone": zone, "name": body["name"], "type": body["type"]}
                if body["type"] == "TXT":
                    record["content"] = body["content"]
                elif body["type"] == "CAA":
                    data = body["data"]
                    record["content"] = f'{data["flags"]} {data["tag"]} "{data["value"]}"'
                else:
                    return 400, {"success": False, "errors": [{"code": 1, "message": "unsupported type"}]}
                self.records[record_id] = record
                if record["type"] == "TXT":
                    self.sync_txt(record["name"])
                return ok(record)
            if len(parts) == 4 and method == "DELETE":
                record = self.records.pop(parts[3], None)
                if record is None:
                    return 404, {"success": False, "errors": [{"code": 81044, "message": "Record does not exist."}]}
                if record["type"] == "TXT":
                    self.sync_txt(record["name"])
                return ok({"id": record["id"]})
        return 404, {"success": False, "errors": [{"code": 7000, "message": "No route for that URI"}]}


def openssl(h, *args):
    r = h.run(["openssl", *args], timeout=30)
    harness.expect(r.rc == 0, f"openssl {' '.join(args)}: {r}")
    return r.out


def make_tls_ca(h, d):
    """A CA for pebble's own HTTPS listeners (the Debian package ships no test certificate)."""
    ca_key, ca, key, csr, cert, ext = (os.path.join(d, n) for n in ("ca.key", "ca.pem", "wfe.key", "wfe.csr", "wfe.pem", "ext"))
    openssl(h, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "2", "-subj", "/CN=test pebble TLS CA")
    openssl(h, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(h, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
            "-extfile", ext)
    return ca, cert, key


def leaf_of(chain_pem):
    return chain_pem[: chain_pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"


class Pebble:
    """pebble-challtestsrv (DNS for the CA's look-ups) and pebble on loopback, with pebble's own
    HTTPS certificate from a CA made here; the Cloudflare stand-in feeds challtestsrv."""

    def __init__(self, h, d, procs):
        ca, wfe_cert, wfe_key = make_tls_ca(h, d)
        dns_port, ctl_port, acme_port, pebble_mgmt, http01_port = (free_port() for _ in range(5))
        self.http01_port = http01_port
        ctl = subprocess.Popen(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                                "-tlsalpn01", "", "-management", f"127.0.0.1:{ctl_port}", "-defaultIPv6", ""],
                               stdout=open(os.path.join(d, "challtestsrv.log"), "w"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=harness._die_with_parent)
        procs.append(ctl)
        wait_port(ctl_port, ctl, "pebble-challtestsrv")
        config = os.path.join(d, "pebble.json")
        with open(config, "w") as f:
            json.dump({"pebble": {"listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{pebble_mgmt}",
                                  "certificate": wfe_cert, "privateKey": wfe_key, "httpPort": http01_port, "tlsPort": free_port(),
                                  "ocspResponderURL": "", "externalAccountBindingRequired": False,
                                  "retryAfter": {"authz": 1, "order": 1}}}, f)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="30", PEBBLE_VA_ALWAYS_VALID="0")
        self.log = os.path.join(d, "pebble.log")
        pebble = subprocess.Popen(["pebble", "-config", config, "-dnsserver", f"127.0.0.1:{dns_port}"], env=env,
                                  stdout=open(self.log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=harness._die_with_parent)
        procs.append(pebble)
        wait_port(acme_port, pebble, "pebble")
        wait_port(pebble_mgmt, pebble, "pebble management")
        self.ca = ca
        self.challtestsrv = f"http://127.0.0.1:{ctl_port}"
        self.acme_url = f"https://localhost:{acme_port}/dir"
        tls = ssl.create_default_context(cafile=ca)

        def pebble_pem(path):
            with urllib.request.urlopen(f"https://localhost:{pebble_mgmt}{path}", context=tls, timeout=5) as response:
                return response.read().decode()

        self.root = os.path.join(d, "root.pem")
        self.intermediate = os.path.join(d, "intermediate.pem")
        with open(self.root, "w") as f:
            f.write(pebble_pem("/roots/0"))
        with open(self.intermediate, "w") as f:
            f.write(pebble_pem("/intermediates/0"))


def main(h):
    d = h.tmpdir("acme")
    procs = []
    cloudflare = None
    try:
        pebble = Pebble(h, d, procs)
        ca, root, intermediate, acme_url = pebble.ca, pebble.root, pebble.intermediate, pebble.acme_url
        challtestsrv, http01_port, pebble_log = pebble.challtestsrv, pebble.http01_port, pebble.log
        cloudflare = Cloudflare(challtestsrv)
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        account = os.path.join(d, "account.json")
        outputs = []  # every run's stdout and stderr, checked for secrets at the end

        def certbot(out_dir, *args, timeout=120):
            os.makedirs(out_dir, exist_ok=True)
            started = time.monotonic()
            r = h.run([h.dstack, "gateway", "certbot", "issue", "--acme-url", acme_url, "--ca-file", ca, "--account", account,
                       "--out-dir", out_dir, "--timeout", "90", *args], timeout=timeout)
            outputs.append(r.out + r.err)
            if os.environ.get("ACME_TEST_SHOW_LOGS"):
                print(r.err)
            print(f"  certbot {' '.join(args[:4])}: rc {r.rc} in {time.monotonic() - started:.1f} s")
            return r

        def check_issued(r, out_dir, name):
            harness.expect(r.rc == 0, f"certbot failed: {r}")
            harness.expect(re.fullmatch(rf"issued {re.escape(name)} not_after \S+Z\n", r.out) is not None, f"stdout: {r.out!r}")
            cert, key = os.path.join(out_dir, "cert.pem"), os.path.join(out_dir, "key.pem")
            harness.expect(os.stat(key).st_mode & 0o777 == 0o600, "key.pem is not 0600")
            with open(cert) as f:
                chain = f.read()
            leaf = os.path.join(out_dir, "leaf.pem")
            with open(leaf, "w") as f:
                f.write(leaf_of(chain))
            verified = h.run(["openssl", "verify", "-CAfile", root, "-untrusted", intermediate, leaf])
            harness.expect(verified.rc == 0 and verified.out.strip().endswith("OK"), f"openssl verify: {verified}")
            sans = openssl(h, "x509", "-in", leaf, "-noout", "-ext", "subjectAltName")
            harness.expect(f"DNS:{name}" in sans, f"SANs: {sans}")
            cert_pub = openssl(h, "x509", "-in", leaf, "-noout", "-pubkey")
            key_pub = openssl(h, "pkey", "-in", key, "-pubout")
            harness.expect(cert_pub == key_pub, "key.pem does not match the certificate")
            end = openssl(h, "x509", "-in", leaf, "-noout", "-enddate")
            harness.expect(time.mktime(time.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")) > time.time(), end)
            return key_pub

        cf_args = ["--cloudflare-api-url", cloudflare.url, "--cloudflare-token-file", token_file]
        first_key = None
        account_url = None
        with h.case("dns-01: a wildcard certificate for *.test.local, chain verified against pebble's root"):
            r = certbot(os.path.join(d, "out1"), "--domain", "*.test.local", "--challenge", "dns-01", *cf_args,
                        "--set-caa", "--caa-issuer", "pebble.test")
            first_key = check_issued(r, os.path.join(d, "out1"), "*.test.local")
            harness.expect(os.stat(account).st_mode & 0o777 == 0o600, "the account file is not 0600")
            with open(account) as f:
                account_url = json.load(f)["account_url"]
            harness.expect(f"created ACME account {account_url}" in r.err, f"stderr: {r.err}")
            txt_posts = [entry for entry in cloudflare.log if entry[0] == "POST" and entry[3]["type"] == "TXT"]
            harness.expect(len(txt_posts) == 1 and txt_posts[0][3]["name"] == "_acme-challenge.test.local"
                           and txt_posts[0][1] == "/client/v4/zones/zone-test/dns_records" and txt_posts[0][3]["ttl"] == 60,
                           f"TXT records added: {txt_posts}")
            harness.expect(set(entry[2].get("page") for entry in cloudflare.log if entry[1] == "/client/v4/zones") >= {"1", "2", "3"},
                           "the zone list was not read page by page")

        with h.case("dns-01: the Cloudflare stand-in holds no TXT record afterwards"):
            harness.expect(not [r for r in cloudflare.records.values() if r["type"] == "TXT"], f"left: {cloudflare.records}")

        with h.case("--set-caa: CAA issue and issuewild pinned to the account, no guard left"):
            caa = sorted(r["content"] for r in cloudflare.records.values() if r["type"] == "CAA")
            want = sorted(f'0 {tag} "pebble.test;validationmethods=dns-01;accounturi={account_url}"' for tag in ("issue", "issuewild"))
            harness.expect(caa == want, f"CAA records: {caa}")
            guards = [e for e in cloudflare.log if e[0] == "POST" and e[3]["type"] == "CAA" and e[3]["data"]["value"] == ";"]
            harness.expect(len(guards) == 2, f"guard records: {guards}")

        with h.case("renewal: the second issuance reuses the account and has a new key"):
            with open(account) as f:
                before = f.read()
            r = certbot(os.path.join(d, "out2"), "--domain", "*.test.local", "--challenge", "dns-01", *cf_args)
            second_key = check_issued(r, os.path.join(d, "out2"), "*.test.local")
            harness.expect(f"used ACME account {account_url}" in r.err, f"stderr: {r.err}")
            with open(account) as f:
                harness.expect(f.read() == before, "the account file changed")
            harness.expect(first_key is not None and second_key != first_key, "the renewed certificate has the same key")
            harness.expect(not [r for r in cloudflare.records.values() if r["type"] == "TXT"], "TXT records left")

        with h.case("http-01: a certificate for a.test.local served from --http01-listen"):
            harness.expect(post_json(challtestsrv + "/add-a", {"host": "a.test.local.", "addresses": ["127.0.0.1"]}) == 200, "add-a")
            r = certbot(os.path.join(d, "out3"), "--domain", "a.test.local", "--challenge", "http-01",
                        "--http01-listen", f"127.0.0.1:{http01_port}")
            check_issued(r, os.path.join(d, "out3"), "a.test.local")

        with h.case("http-01 nobody answers: the authorization's invalid status and pebble's problem in the error"):
            harness.expect(post_json(challtestsrv + "/add-a", {"host": "c.test.local.", "addresses": ["127.0.0.1"]}) == 200, "add-a")
            out_dir = os.path.join(d, "out5")
            # Served on another port than the one pebble connects to (its httpPort).
            r = certbot(out_dir, "--domain", "c.test.local", "--challenge", "http-01", "--http01-listen", f"127.0.0.1:{free_port()}")
            harness.expect(r.rc == 1, f"rc {r.rc}")
            harness.expect(re.search(r"ACME authorization for c\.test\.local: invalid: urn:ietf:params:acme:error:\w+: .+", r.err)
                           is not None, f"stderr: {r.err}")
            harness.expect(not os.path.exists(os.path.join(out_dir, "cert.pem")), "a certificate was written")

        with h.case("a wrong Cloudflare token: a clear error, no certificate, the token not echoed"):
            bad = os.path.join(d, "bad-token")
            with open(bad, "w") as f:
                f.write("wrong-token-SECRET-77\n")
            out_dir = os.path.join(d, "out4")
            # A name pebble holds no valid authorization for, so a challenge is needed.
            r = certbot(out_dir, "--domain", "*.b.test.local", "--challenge", "dns-01", "--cloudflare-api-url", cloudflare.url,
                        "--cloudflare-token-file", bad)
            harness.expect(r.rc == 1, f"rc {r.rc}")
            harness.expect("Cloudflare list zones: HTTP 403: Authentication error [code 10000]" in r.err, f"stderr: {r.err}")
            harness.expect("ACME dns-01: publishing TXT at _acme-challenge.b.test.local" in r.err, f"stderr: {r.err}")
            harness.expect("wrong-token-SECRET-77" not in r.out + r.err, "the token is in the output")
            harness.expect(not os.path.exists(os.path.join(out_dir, "cert.pem")), "a certificate was written")

        with h.case("an account file for another directory is refused"):
            r = h.run([h.dstack, "gateway", "certbot", "issue", "--acme-url", acme_url.replace("/dir", "/other"),
                       "--ca-file", ca, "--account", account, "--out-dir", d, "--domain", "x.test.local",
                       "--challenge", "dns-01", *cf_args])
            harness.expect(r.rc == 1 and "the account belongs to" in r.err, f"{r}")

        with h.case("an untrusted ACME server is refused (TLS checked)"):
            other = os.path.join(d, "other-account.json")
            r = h.run([h.dstack, "gateway", "certbot", "issue", "--acme-url", acme_url, "--ca-file", root,
                       "--account", other, "--out-dir", d, "--domain", "x.test.local", "--challenge", "dns-01", *cf_args])
            harness.expect(r.rc == 1 and "ACME directory" in r.err and not os.path.exists(other), f"{r}")

        with h.case("nothing secret in any output"):
            keys = []
            for out in ("out1", "out2", "out3"):
                with open(os.path.join(d, out, "key.pem")) as f:
                    keys.append(f.read().splitlines()[1])
            with open(account) as f:
                keys.append(json.load(f)["key_pem"].splitlines()[1])
            text = "".join(outputs)
            harness.expect(TOKEN not in text, "the Cloudflare token is in the output")
            harness.expect(not any(k in text for k in keys) and "PRIVATE KEY" not in text, "a private key is in the output")
    finally:
        if os.environ.get("ACME_TEST_SHOW_LOGS"):
            with open(os.path.join(d, "pebble.log")) as f:
                print(f.read())
        if cloudflare:
            cloudflare.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    harness.main(main, needs=["pebble", "pebble-challtestsrv", "openssl"])
