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
import socket
import threading
import time

import harness  # next to this file
from harness import Address, expect, http_body, http_status, read_until_close

HEADER_TIMEOUT_MS = 2000
BODY_TIMEOUT_MS = 2000
IDLE_TIMEOUT_MS = 3000
TLS_HANDSHAKE_TIMEOUT_MS = 2000

h = None  # the Harness, set by main()


def run(cmd, input_bytes=None, timeout=20):
    return h.run(cmd, stdin=input_bytes, timeout=timeout, text=False)


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
        expect(result.rc == 0, "openssl failed: %s" % result)
    return ca_pem, cert, key


class NetServer:
    """net-test-server on a unix socket, TCP and TLS; `ready KIND:ADDRESS` names each listener."""

    def __init__(self, process):
        self.process = process
        by_kind = {a.kind: a for a in process.addresses}
        expect(set(by_kind) == {"unix", "tcp", "tls"}, "listeners: %s" % process.addresses)
        self.socket_path = by_kind["unix"].path
        self.tcp_port = by_kind["tcp"].port
        self.tls_port = by_kind["tls"].port

    def alive(self):
        return self.process.alive()


def start_server(binary, directory, cert, key):
    cmd = [binary, "--unix", os.path.join(directory, "net.sock"), "--tcp", "127.0.0.1:0", "--tls", "127.0.0.1:0",
           "--tls-cert", cert, "--tls-key", key,
           "--header-timeout-ms", str(HEADER_TIMEOUT_MS), "--body-timeout-ms", str(BODY_TIMEOUT_MS),
           "--idle-timeout-ms", str(IDLE_TIMEOUT_MS), "--min-body-rate", "1000",
           "--tls-handshake-timeout-ms", str(TLS_HANDSHAKE_TIMEOUT_MS)]
    return h.server(cmd, ready=r"^ready (\S+)", count=3, timeout=10)


def unix_connect(path, timeout=5):
    return harness.connect(Address("unix", path=path), timeout)


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
                if http_status(response) != 200 or http_body(response) != b"ok":
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
        expect(not self.errors, "the concurrent good client failed: %s" % self.errors[:3])
        expect(self.ok >= 1, "the concurrent good client completed no request")


# ---- cases ----

def case_curl_unix(server, tmp):
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "http://localhost/health"])
    expect(r.rc == 0 and r.out == b"ok\n200", "curl over unix: %r %r" % (r.out, r.err))
    payload = json.dumps({"a": 1, "s": "x y", "n": None})
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-H", "Content-Type: application/json",
             "--data-binary", payload, "http://localhost/prpc/Test.Echo"])
    expect(r.rc == 0 and json.loads(r.out) == {"a": 1, "s": "x y", "n": None}, "prpc Echo: %r" % r.out)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-X", "POST", "http://localhost/prpc/Info?json"])
    expect(r.out == b'{"tls":false,"name":"net-test-server \\u00E9"}', "prpc Info (ASCII-escaped): %r" % r.out)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}",
             "http://localhost/prpc/Hex?data=0x0xDEADbeef"])
    body, code = r.out.rsplit(b"\n", 1)
    expect(code == b"200" and json.loads(body) == {"data": "deadbeef", "length": 4}, "prpc Hex via GET: %r" % r.out)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", "{}", "http://localhost/prpc/Fail"])
    body, code = r.out.rsplit(b"\n", 1)
    expect(code == b"400" and body == b'{\n  "error": "deliberate failure: as requested"\n}', "prpc Fail: %r" % r.out)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", "{}", "http://localhost/prpc/Nope"])
    expect(r.out.endswith(b"400") and b"Service not found: Nope" in r.out, "unknown method: %r" % r.out)
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "-w", "\n%{http_code}", "--data-binary", "\x0a\x01",
             "-H", "Content-Type: application/octet-stream", "http://localhost/prpc/Echo"])
    expect(r.out.endswith(b"400") and b"protobuf" in r.out, "protobuf refused: %r" % r.out)
    # Keep-alive: two URLs on one connection.
    r = run(["curl", "-sS", "-v", "--unix-socket", server.socket_path, "http://localhost/health",
             "http://localhost/health"])
    expect(r.out == b"okok" and b"Re-using existing connection" in r.err, "keep-alive reuse: %r" % r.err[-300:])
    # 1 MB through /echo, with curl's Expect: 100-continue.
    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(1 << 20))
    r = run(["curl", "-sS", "--unix-socket", server.socket_path, "--data-binary", "@" + blob,
             "-H", "Expect: 100-continue", "http://localhost/echo"])
    with open(blob, "rb") as f:
        expect(r.out == f.read(), "1 MB echo differs (%d bytes back)" % len(r.out))


def case_curl_tcp_and_https(server, tmp):
    r = run(["curl", "-sS", "http://127.0.0.1:%d/health" % server.tcp_port])
    expect(r.out == b"ok", "curl over TCP: %r %r" % (r.out, r.err))
    ca = os.path.join(tmp, "ca.pem")
    r = run(["curl", "-sS", "--cacert", ca, "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "https://localhost:%d/health" % server.tls_port])
    expect(r.rc == 0 and r.out == b"ok", "curl over https: %r %r" % (r.out, r.err))
    r = run(["curl", "-sS", "--cacert", ca, "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "-X", "POST", "https://localhost:%d/prpc/Info?json" % server.tls_port])
    expect(r.out.startswith(b'{"tls":true'), "prpc over https sees TLS: %r %r" % (r.out, r.err))
    # The certificate must really be checked: without the CA, curl refuses.
    r = run(["curl", "-sS", "--resolve", "localhost:%d:127.0.0.1" % server.tls_port,
             "https://localhost:%d/health" % server.tls_port])
    expect(r.rc != 0, "curl without the CA should fail")


def case_openssl_s_client(server, tmp):
    ca = os.path.join(tmp, "ca.pem")
    request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    for flag, expected in (("-tls1_3", b"TLSv1.3"), ("-tls1_2", b"TLSv1.2")):
        r = run(["openssl", "s_client", flag, "-connect", "127.0.0.1:%d" % server.tls_port, "-servername",
                 "localhost", "-CAfile", ca, "-verify_return_error", "-ign_eof"], input_bytes=request)
        out = r.out
        expect(b"HTTP/1.1 200 OK" in out and b"\r\n\r\nok" in out,
               "s_client %s: no HTTP response: %r" % (flag, out[-300:]))
        expect(expected in out and b"Verify return code: 0 (ok)" in out,
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
    expect(len(length) == 1, "no Content-Length: %r" % head)
    while len(body) < length[0]:
        body += s.recv(4096)
    expect(body == b'{"path":"p","purpose":"\\u00E9"}', "body: %r" % body)
    expect(body.decode("ascii") and len(body) == length[0], "non-ASCII must be escaped")
    started = time.time()
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(4096)
    expect(rest == b"" and time.time() - started < 1.0, "server did not close after the client's half-close")
    s.close()


def case_malformed_request_line(server, tmp):
    s = unix_connect(server.socket_path)
    s.sendall(b"GARBAGE\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    response = read_until_close(s)
    s.close()
    expect(http_status(response) == 400, "expected 400, got %r" % response[:80])
    expect(response.count(b"HTTP/1.1") == 1, "the connection should close after the 400")
    expect(b"Connection: close" in response and b'"error"' in http_body(response), "error response shape: %r" % response)


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
    expect(sent < 100 * (1 << 20), "the server read the whole 100 MB body")
    expect(http_status(response) == 413 or response == b"", "expected 413, got %r" % response[:80])
    expect(elapsed < 10, "413 took %.1f s" % elapsed)
    # And the 413 itself, seen by a client that waits for it before sending its body:
    s = unix_connect(server.socket_path)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 104857600\r\n\r\n")
    response = read_until_close(s)
    s.close()
    expect(http_status(response) == 413, "expected 413 on the headers alone, got %r" % response[:80])
    # curl uploading a (sparse) 100 MB file: it sends Expect: 100-continue and gets 413 instead.
    big = os.path.join(tmp, "big")
    with open(big, "wb") as f:
        f.truncate(100 << 20)
    started = time.time()
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", server.socket_path,
             "-X", "POST", "-T", big, "--max-time", "10", "http://localhost/echo"])
    os.unlink(big)
    expect(r.out == b"413", "curl 100 MB upload: %r %r" % (r.out, r.err))
    expect(time.time() - started < 5, "curl's 413 took %.1f s" % (time.time() - started))


def case_headers_too_large(server, tmp):
    s = unix_connect(server.socket_path)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n")
    response = b""
    try:
        response = read_until_close(s)
    except OSError:
        pass
    s.close()
    expect(http_status(response) == 431, "expected 431, got %r" % response[:80])
    many = b"".join(b"X-%d: v\r\n" % i for i in range(500))
    s = unix_connect(server.socket_path)
    s.sendall(b"GET /health HTTP/1.1\r\n" + many + b"\r\n")
    response = read_until_close(s)
    s.close()
    expect(http_status(response) == 431, "expected 431 for 500 fields, got %r" % response[:80])


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
            expect(False, "unexpected data from the server: %r" % data)
        except socket.timeout:
            continue
        except OSError:
            closed_after = time.time() - started
            break
    s.close()
    limit = HEADER_TIMEOUT_MS / 1000.0
    expect(closed_after is not None, "the slow client was never cut off")
    expect(limit - 0.5 <= closed_after <= limit + 2.5, "cut off after %.1f s (header timeout %.1f s)" %
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
    expect(closed_after is not None and closed_after <= BODY_TIMEOUT_MS / 1000.0 + 2.5,
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
            expect(False, "the server kept a garbage TLS connection open (%r...)" % garbage[:8])
        except OSError:
            data = b""  # reset: closed too
        s.close()
        expect(b"HTTP/1.1 200" not in data, "garbage got an HTTP answer over TLS")
        expect(time.time() - started <= TLS_HANDSHAKE_TIMEOUT_MS / 1000.0 + 1.5, "closing took too long")
    r = run(["curl", "-sS", "--cacert", os.path.join(tmp, "ca.pem"), "--resolve",
             "localhost:%d:127.0.0.1" % server.tls_port, "https://localhost:%d/health" % server.tls_port])
    expect(r.out == b"ok", "TLS listener broken after garbage: %r %r" % (r.out, r.err))


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
    expect(server.alive(), "the server died")


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


def main(harness_):
    global h
    h = harness_
    with h.group("net-test-server"):
        binary = h.binary("tests/integration/net-test-server")
        tmp = h.tmpdir("net")
        _, cert, key = make_certificates(tmp)
        with start_server(binary, tmp, cert, key) as process:
            server = NetServer(process)
            for name, case, with_good_client in CASES:
                with h.case(name):
                    if with_good_client:
                        with GoodClient(server) as good:
                            case(server, tmp)
                            time.sleep(0.1)
                        good.verify()
                    else:
                        case(server, tmp)
                    expect(server.alive(), "the server exited")


if __name__ == "__main__":
    harness.main(main, needs=["curl", "openssl"])
