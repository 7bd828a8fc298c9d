#!/usr/bin/env python3
"""Integration test of the net layer's HTTP server, prpc and TLS against real clients.

usage: python3 tests/integration/test_net.py BUILD_DIR

Starts BUILD_DIR/tests/integration/net-test-server on a unix socket, plain TCP and TLS (with a
CA and certificate made here by the openssl CLI), then talks to it with curl, openssl s_client
and raw sockets. Every bad-client case runs while a well-behaved client keeps making requests
in the background; that client must see no failure. Python 3 standard library only.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HEADER_TIMEOUT_MS = 2000
BODY_TIMEOUT_MS = 2000
IDLE_TIMEOUT_MS = 3000
TLS_HANDSHAKE_TIMEOUT_MS = 2000


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def run(cmd, input_bytes=None, timeout=20):
    return subprocess.run(cmd, input=input_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def make_certificates(directory):
    """A P-256 CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    ca_key = os.path.join(directory, "ca.key")
    ca_pem = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    steps = [
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key],
        ["openssl", "req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=net-test CA", "-days", "2",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", ca_pem],
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
        ["openssl", "req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", csr],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", ext, "-out", cert],
    ]
    for step in steps:
        result = run(step)
        if result.returncode != 0:
            raise Failure("openssl failed: %s: %s" % (" ".join(step), result.stderr.decode(errors="replace")))
    return ca_pem, cert, key


class Server:
    def __init__(self, binary, directory, cert, key):
        self.socket_path = os.path.join(directory, "net.sock")
        cmd = [binary, "--unix", self.socket_path, "--tcp", "127.0.0.1:0", "--tls", "127.0.0.1:0",
               "--tls-cert", cert, "--tls-key", key,
               "--header-timeout-ms", str(HEADER_TIMEOUT_MS), "--body-timeout-ms", str(BODY_TIMEOUT_MS),
               "--idle-timeout-ms", str(IDLE_TIMEOUT_MS), "--min-body-rate", "1000",
               "--tls-handshake-timeout-ms", str(TLS_HANDSHAKE_TIMEOUT_MS)]
        self.log = open(os.path.join(directory, "server.log"), "wb")
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        self.tcp_port = self.tls_port = None
        deadline = time.time() + 10
        ready = set()
        while len(ready) < 3:
            line = self.process.stdout.readline().decode().strip()
            if not line:
                raise Failure("server exited before it was ready (rc=%s)" % self.process.poll())
            if time.time() > deadline:
                raise Failure("server not ready in time")
            kind, _, address = line.partition(" ")[2].partition(":")
            if kind == "tcp":
                self.tcp_port = int(address.rsplit(":", 1)[1])
            elif kind == "tls":
                self.tls_port = int(address.rsplit(":", 1)[1])
            ready.add(kind)

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def unix_connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_until_close(s, limit=1 << 20):
    data = b""
    while len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def status_of(response):
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


def body_of(response):
    return response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else b""


class GoodClient:
    """Keeps making ordinary requests on the unix socket while a bad client misbehaves."""

    def __init__(self, server):
        self.server = server
        self.ok = 0
        self.errors = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_event.is_set():
            try:
                s = unix_connect(self.server.socket_path, timeout=3)
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                response = read_until_close(s)
                s.close()
                if status_of(response) != 200 or body_of(response) != b"ok":
                    self.errors.append("unexpected response %r" % response[:80])
                else:
                    self.ok += 1
            except OSError as e:
                self.errors.append(str(e))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)
        return False

    def verify(self):
        check(not self.errors, "the concurrent good client failed: %s" % self.errors[:3])
        check(self.ok >= 1, "the concurrent good client completed no request")


# ---- cases ----

def case_curl_unix(server, tmp):
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "http://localhost/health"])
    check(r.returncode == 0 and r.stdout == b"ok\n200", "curl over unix: %r %r" % (r.stdout, r.stderr))
    payload = json.dumps({"a": 1, "s": "x y", "n": None})
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-H", "Content-Type: application/json",
             "--data-binary", payload, "http://localhost/prpc/Test.Echo"])
    check(r.returncode == 0 and json.loads(r.stdout) == {"a": 1, "s": "x y", "n": None}, "prpc Echo: %r" % r.stdout)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-X", "POST", "http://localhost/prpc/Info?json"])
    check(r.stdout == b'{"tls":false,"name":"net-test-server \\u00E9"}', "prpc Info (ASCII-escaped): %r" % r.stdout)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}",
             "http://localhost/prpc/Hex?data=0x0xDEADbeef"])
    body, code = r.stdout.rsplit(b"\n", 1)
    check(code == b"200" and json.loads(body) == {"data": "deadbeef", "length": 4}, "prpc Hex via GET: %r" % r.stdout)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", "{}", "http://localhost/prpc/Fail"])
    body, code = r.stdout.rsplit(b"\n", 1)
    check(code == b"400" and body == b'{\n  "error": "deliberate failure: as requested"\n}', "prpc Fail: %r" % r.stdout)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", "{}", "http://localhost/prpc/Nope"])
    check(r.stdout.endswith(b"400") and b"Service not found: Nope" in r.stdout, "unknown method: %r" % r.stdout)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "--data-binary", "\x0a\x01",
             "-H", "Content-Type: application/octet-stream", "http://localhost/prpc/Echo"])
    check(r.stdout.endswith(b"400") and b"protobuf" in r.stdout, "protobuf refused: %r" % r.stdout)
    # Keep-alive: two URLs on one connection.
    r = run(["curl", "-sS", "-v", "--unix-socket", server.socket_path, "http://localhost/health",
             "http://localhost/health"])
    check(r.stdout == b"okok" and b"Re-using existing connection" in r.stderr, "keep-alive reuse: %r" % r.stderr[-300:])
    # 1 MB through /echo, with curl's Expect: 100-continue.
    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(1 << 20))
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "--data-binary", "@" + blob,
             "-H", "Expect: 100-continue", "http://localhost/echo"])
    with open(blob, "rb") as f:
        check(r.stdout == f.read(), "1 MB echo differs (%d bytes back)" % len(r.stdout))


def case_curl_tcp_and_https(server, tmp):
    r = run(["curl", "-sS", "http://127.0.0.1:%d/health" % server.tcp_port])
    check(r.stdout == b"ok", "curl over TCP: %r %r" % (r.stdout, r.stderr))
    ca = os.path.join(tmp, "ca.pem")
    r = run(["curl", "-sS", "--cacert", ca, "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "https://localhost:%d/health" % server.tls_port])
    check(r.returncode == 0 and r.stdout == b"ok", "curl over https: %r %r" % (r.stdout, r.stderr))
    r = run(["curl", "-sS", "--cacert", ca, "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "-X", "POST", "https://localhost:%d/prpc/Info?json" % server.tls_port])
    check(r.stdout.startswith(b'{"tls":true'), "prpc over https sees TLS: %r %r" % (r.stdout, r.stderr))
    # The certificate must really be checked: without the CA, curl refuses.
    r = run(["curl", "-sS", "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "https://localhost:%d/health" % server.tls_port])
    check(r.returncode != 0, "curl without the CA should fail")


def case_openssl_s_client(server, tmp):
    ca = os.path.join(tmp, "ca.pem")
    request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    for flag, expected in (("-tls1_3", b"TLSv1.3"), ("-tls1_2", b"TLSv1.2")):
        r = run(["openssl", "s_client", flag, "-connect", "127.0.0.1:%d" % server.tls_port, "-servername",
                 "localhost", "-CAfile", ca, "-verify_return_error", "-ign_eof"], input_bytes=request)
        out = r.stdout
        check(b"HTTP/1.1 200 OK" in out and b"\r\n\r\nok" in out,
              "s_client %s: no HTTP response: %r" % (flag, out[-300:]))
        check(expected in out and b"Verify return code: 0 (ok)" in out,
              "s_client %s: protocol or verification: %r" % (flag, out[-600:]))


def case_js_sdk_client(server, tmp):
    """Like the JS SDK's unix client: separate writes, then waits for the server's close after its own end()."""
    s = unix_connect(server.socket_path)
    payload = b'{"path":"p","purpose":"\xc3\xa9"}'
    for part in (b"POST /prpc/Echo HTTP/1.1\r\n", b"Host: localhost\r\n", b"Content-Type: application/json\r\n",
                 b"Content-Length: %d\r\n\r\n" % len(payload), payload):
        s.sendall(part)
        time.sleep(0.01)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(h.split(b": ")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
    check(len(length) == 1, "no Content-Length: %r" % head)
    while len(body) < length[0]:
        body += s.recv(4096)
    check(body == b'{"path":"p","purpose":"\\u00E9"}', "body: %r" % body)
    check(body.decode("ascii") and len(body) == length[0], "non-ASCII must be escaped")
    started = time.time()
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(4096)
    check(rest == b"" and time.time() - started < 1.0, "server did not close after the client's half-close")
    s.close()


def case_malformed_request_line(server, tmp):
    s = unix_connect(server.socket_path)
    s.sendall(b"GARBAGE\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    response = read_until_close(s)
    s.close()
    check(status_of(response) == 400, "expected 400, got %r" % response[:80])
    check(response.count(b"HTTP/1.1") == 1, "the connection should close after the 400")
    check(b"Connection: close" in response and b'"error"' in body_of(response), "error response shape: %r" % response)


def case_huge_body(server, tmp):
    s = unix_connect(server.socket_path, timeout=5)
    started = time.time()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: 104857600\r\n\r\n")
    sent = 0
    chunk = b"\0" * (1 << 20)
    try:
        while sent < 100 * (1 << 20):
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server stopped reading and closed: what we want
    response = b""
    try:
        response = read_until_close(s)
    except OSError:
        pass
    s.close()
    elapsed = time.time() - started
    check(sent < 100 * (1 << 20), "the server read the whole 100 MB body")
    check(status_of(response) == 413 or response == b"", "expected 413, got %r" % response[:80])
    check(elapsed < 10, "413 took %.1f s" % elapsed)
    # And the 413 itself, seen by a client that waits for it before sending its body:
    s = unix_connect(server.socket_path)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 104857600\r\n\r\n")
    response = read_until_close(s)
    s.close()
    check(status_of(response) == 413, "expected 413 on the headers alone, got %r" % response[:80])
    # curl uploading a (sparse) 100 MB file: it sends Expect: 100-continue and gets 413 instead.
    big = os.path.join(tmp, "big")
    with open(big, "wb") as f:
        f.truncate(100 << 20)
    started = time.time()
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", server.socket_path,
             "-X", "POST", "-T", big, "--max-time", "10", "http://localhost/echo"])
    os.unlink(big)
    check(r.stdout == b"413", "curl 100 MB upload: %r %r" % (r.stdout, r.stderr))
    check(time.time() - started < 5, "curl's 413 took %.1f s" % (time.time() - started))


def case_headers_too_large(server, tmp):
    s = unix_connect(server.socket_path)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n")
    response = b""
    try:
        response = read_until_close(s)
    except OSError:
        pass
    s.close()
    check(status_of(response) == 431, "expected 431, got %r" % response[:80])
    many = b"".join(b"X-%d: v\r\n" % i for i in range(500))
    s = unix_connect(server.socket_path)
    s.sendall(b"GET /health HTTP/1.1\r\n" + many + b"\r\n")
    response = read_until_close(s)
    s.close()
    check(status_of(response) == 431, "expected 431 for 500 fields, got %r" % response[:80])


def case_slowloris(server, tmp):
    """One byte a second: the header timeout cuts the client off."""
    s = unix_connect(server.socket_path, timeout=1)
    started = time.time()
    closed_after = None
    request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"z" * 100
    for byte in request:
        try:
            s.sendall(bytes([byte]))
            s.settimeout(1.0)
            data = s.recv(4096)
            if data == b"":
                closed_after = time.time() - started
                break
            check(False, "unexpected data from the server: %r" % data)
        except socket.timeout:
            continue
        except OSError:
            closed_after = time.time() - started
            break
    s.close()
    limit = HEADER_TIMEOUT_MS / 1000.0
    check(closed_after is not None, "the slow client was never cut off")
    check(limit - 0.5 <= closed_after <= limit + 2.5, "cut off after %.1f s (header timeout %.1f s)" %
          (closed_after, limit))
    # And a slow body: after the headers, one byte a second.
    s = unix_connect(server.socket_path, timeout=1)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
    started = time.time()
    closed_after = None
    for _ in range(10):
        try:
            s.sendall(b"x")
            data = s.recv(4096)
            if data == b"":
                closed_after = time.time() - started
                break
        except socket.timeout:
            continue
        except OSError:
            closed_after = time.time() - started
            break
    s.close()
    check(closed_after is not None and closed_after <= BODY_TIMEOUT_MS / 1000.0 + 2.5,
          "the slow body was not cut off in time (%s)" % closed_after)


def case_tls_garbage(server, tmp):
    # Random bytes, plain HTTP, and a truncated ClientHello that leaves the handshake waiting:
    # each connection must be closed by the server, the last one by the handshake timeout.
    for garbage in (os.urandom(2048), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hel"):
        s = socket.create_connection(("127.0.0.1", server.tls_port), timeout=TLS_HANDSHAKE_TIMEOUT_MS / 1000.0 + 3)
        started = time.time()
        try:
            s.sendall(garbage)
            data = read_until_close(s)
        except socket.timeout:
            check(False, "the server kept a garbage TLS connection open (%r...)" % garbage[:8])
        except OSError:
            data = b""  # reset: closed too
        s.close()
        check(b"HTTP/1.1 200" not in data, "garbage got an HTTP answer over TLS")
        check(time.time() - started <= TLS_HANDSHAKE_TIMEOUT_MS / 1000.0 + 1.5, "closing took too long")
    r = run(["curl", "-sS", "--cacert", os.path.join(tmp, "ca.pem"), "--resolve",
             "localhost:%d:127.0.0.1" % server.tls_port, "https://localhost:%d/health" % server.tls_port])
    check(r.stdout == b"ok", "TLS listener broken after garbage: %r %r" % (r.stdout, r.stderr))


def case_disconnect_mid_request(server, tmp):
    for partial in (b"GET /heal", b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf",
                    b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"):
        s = unix_connect(server.socket_path)
        s.sendall(partial)
        s.close()
        # An abortive close (RST) too.
        s = unix_connect(server.socket_path)
        s.sendall(partial)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        s.close()
    s = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    s.close()
    time.sleep(0.2)
    check(server.alive(), "the server died")


CASES = [
    ("curl over unix socket, prpc, keep-alive, 100-continue", case_curl_unix, False),
    ("curl over TCP and https", case_curl_tcp_and_https, False),
    ("openssl s_client TLS 1.3 and 1.2", case_openssl_s_client, False),
    ("JS-SDK-style client: close after half-close", case_js_sdk_client, False),
    ("malformed request line -> 400 and close", case_malformed_request_line, True),
    ("100 MB body -> 413 quickly", case_huge_body, True),
    ("headers past the limit -> 431", case_headers_too_large, True),
    ("one byte a second -> cut off", case_slowloris, True),
    ("TLS garbage -> handshake fails, server keeps serving", case_tls_garbage, True),
    ("client disconnects mid-request", case_disconnect_mid_request, True),
]


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = os.path.join(sys.argv[1], "tests", "integration", "net-test-server")
    if not os.access(binary, os.X_OK):
        print("integration-net: %s not built" % binary, file=sys.stderr)
        return 2
    for tool in ("curl", "openssl"):
        if shutil.which(tool) is None:
            print("integration-net: %s is required" % tool, file=sys.stderr)
            return 2
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="dstack-net-it-")
    server = None
    started = time.time()
    try:
        _, cert, key = make_certificates(tmp)
        server = Server(binary, tmp, cert, key)
        for name, case, with_good_client in CASES:
            case_started = time.time()
            try:
                if with_good_client:
                    with GoodClient(server) as good:
                        case(server, tmp)
                        time.sleep(0.1)
                    good.verify()
                else:
                    case(server, tmp)
                check(server.alive(), "the server exited")
                print("PASS %s (%.1f s)" % (name, time.time() - case_started))
                passed += 1
            except (Failure, OSError, subprocess.TimeoutExpired, ValueError) as e:
                print("FAIL %s: %s" % (name, e))
                failed += 1
    except Failure as e:
        print("FAIL setup: %s" % e)
        failed += 1
    finally:
        if server is not None:
            server.stop()
            if failed:
                with open(os.path.join(tmp, "server.log"), "rb") as f:
                    tail = f.read()[-3000:].decode(errors="replace")
                if tail:
                    print("--- server log (tail) ---\n" + tail)
        shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.time() - started))
    print("integration-net: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
