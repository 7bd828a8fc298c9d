#!/usr/bin/env python3
"""Integration test: `dstack verify serve` keeps serving others while clients try to exhaust it.

usage: python3 tests/integration/test_serve_attack.py DSTACK_BINARY

Starts the real server on 127.0.0.1 (the sample TDX quote's collateral, --now, --skip-os-image)
and attacks it from other loopback addresses (the whole of 127/8 is loopback; each client socket
is bound to its source address before connecting):
  1. 500 idle and 200 header-only connections from 127.0.0.2;
  2. 160 requests from 127.0.0.3-6 that announce a 2 MiB body (the largest allowed) and send 10
     bytes (160 x 2 MiB is more than the server's 256 MiB request-body budget);
  3. 64 idle connections from each of 17 addresses (127.0.0.10-26): more than the server's 1024.
While each attack holds its connections, GET /health and a good POST /verify from 127.0.0.1
(real curl) must succeed, and the server must have applied the rule that defends against it
(refused 127.0.0.2's connections beyond its per-address limit; answered none of the announcers;
closed idle connections to make room). Python 3 standard library plus the curl binary; bounded
in time (a watchdog alarm), closes every socket and kills the server at the end.
"""

import errno
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("DSTACK_VECTORS") or os.path.join(HERE, "..", "..", "..", "shared", "vectors")
TDX_NOW = "1752919234"
TIME_LIMIT = 240          # seconds for the whole test
PER_ADDRESS_LIMIT = 64    # http::ServerOptions::max_connections_per_address's default
MAX_CONNECTIONS = 1024    # http::ServerOptions::max_connections's default
MAX_BODY = 2 * 1024 * 1024  # verify serve's request body limit

results = {"passed": 0, "failed": 0}


def case(name, condition, detail=""):
    if condition:
        results["passed"] += 1
        print(f"ok   {name}")
    else:
        results["failed"] += 1
        print(f"FAIL {name} {str(detail)[:2000]}")


def vec(name):
    return os.path.join(VECTORS, name)


def raise_fd_limit(needed):
    """Raises this process's descriptor limit (the server, started later, inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


class Server:
    def __init__(self, dstack):
        args = [dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--collateral",
                vec("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"]
        # Its log goes to a file: a pipe nobody reads could fill and stall the server.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode(errors="replace")
        match = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def log_tail(self, lines=20):
        self.log.seek(0)
        return b"\n".join(self.log.read().splitlines()[-lines:]).decode(errors="replace")


def curl(url, body_file=None):
    """Real curl from 127.0.0.1; returns (HTTP status, body)."""
    args = ["curl", "-sS", "--max-time", "30", "--interface", "127.0.0.1", "-o", "-", "-w", "\n%{http_code}"]
    if body_file:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@" + body_file]
    proc = subprocess.run(args + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    body, _, status = proc.stdout.decode(errors="replace").rpartition("\n")
    try:
        return int(status), body
    except ValueError:
        return 0, body + proc.stderr.decode(errors="replace")


def good_requests_succeed(server, body_file, label):
    status, text = curl(server.url + "/health")
    case(f"{label}: GET /health from 127.0.0.1 answered 200",
         status == 200 and text and json.loads(text) == {"status": "ok", "service": "dstack-verifier"}, (status, text))
    status, text = curl(server.url + "/verify", body_file)
    try:
        details = json.loads(text)["details"] if status == 200 else {}
    except ValueError:
        details = {}
    case(f"{label}: POST /verify from 127.0.0.1 verified the quote",
         status == 200 and details.get("quote_verified") is True and details.get("tcb_status") == "UpToDate",
         (status, text[:300]))


def connect_from(source, port, send=b""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    if send:
        s.sendall(send)
    return s


def close_all(sockets):
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass
    sockets.clear()


def ended_by_server(sockets):
    """The sockets the server has answered or closed (without waiting): {socket: first bytes}."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    ended = {}
    for fd, _ in poller.poll(0):
        s = by_fd[fd]
        try:
            ended[s] = s.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError as e:  # a reset after the server's close counts as an end too
            ended[s] = f"<{errno.errorcode.get(e.errno, e.errno)}>".encode()
    return ended


def flood_one_address(server, body_file):
    """500 idle + 200 header-only connections from 127.0.0.2."""
    held = []
    try:
        partial = b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        for i in range(700):
            held.append(connect_from("127.0.0.2", server.port, partial if i % 7 >= 5 else b""))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, "700 connections opened from 127.0.0.2")
        ended = ended_by_server(held)
        refused_503 = sum(1 for data in ended.values() if data.startswith(b"HTTP/1.1 503 "))
        kept = len(held) - len(ended)
        print(f"     127.0.0.2: {kept} connections kept, {len(ended)} ended by the server ({refused_503} with a 503)")
        case(f"127.0.0.2 kept at most {PER_ADDRESS_LIMIT} connections, the others refused",
             1 <= kept <= PER_ADDRESS_LIMIT and len(ended) >= len(held) - PER_ADDRESS_LIMIT,
             f"kept {kept}, ended by the server {len(ended)} (503: {refused_503})")
        sample = next((d for d in ended.values() if d.startswith(b"HTTP/1.1 503 ")), b"")
        case("a refused connection is told why (503, too many connections from your address)",
             b"too many connections from your address" in sample, sample[:300])
    finally:
        close_all(held)


def announced_bodies(server, body_file):
    """160 requests announcing 2 MiB, sending 10 bytes, from 4 addresses."""
    held = []
    head = (f"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY}\r\n\r\n").encode() + b'{"quote":"'
    try:
        for i in range(160):
            held.append(connect_from(f"127.0.0.{3 + i % 4}", server.port, head))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, "160 x 2 MiB announced, 10 bytes sent")
        ended = ended_by_server(held)
        case("no announcer was refused for what it only announced",
             len(ended) == 0, f"{len(ended)} answered or closed, e.g. {next(iter(ended.values()), b'')[:200]}")
    finally:
        close_all(held)


def many_idle_addresses(server, body_file):
    """64 idle connections from each of 17 addresses: 1088, more than max_connections."""
    held = []
    try:
        for i in range(17 * PER_ADDRESS_LIMIT):
            held.append(connect_from(f"127.0.0.{10 + i % 17}", server.port))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, f"{len(held)} idle connections from 17 addresses")
        time.sleep(0.3)
        ended = ended_by_server(held)
        overflow = len(held) - MAX_CONNECTIONS
        print(f"     {len(ended)} of {len(held)} idle connections closed by the server")
        case("idle connections were closed to make room, none answered 503",
             len(ended) >= overflow and not any(d.startswith(b"HTTP/1.1 503") for d in ended.values()),
             f"{len(ended)} of {len(held)} closed by the server, expected at least {overflow}")
    finally:
        close_all(held)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    dstack = os.path.abspath(sys.argv[1])
    if os.path.isdir(dstack):  # scripts/test passes the build directory
        dstack = os.path.join(dstack, "dstack")
    if not os.path.exists(vec("dcap-qvl/tdx_quote")) or shutil.which("curl") is None:
        print(f"*** vectors missing at {VECTORS} (set DSTACK_VECTORS) or no curl ***")
        print("test_serve_attack: 0 passed, 1 failed")
        return 1
    limit = raise_fd_limit(4096)
    if limit != resource.RLIM_INFINITY and limit < 2400:
        print(f"*** RLIMIT_NOFILE is {limit}; this test needs about 2400 descriptors ***")
        print("test_serve_attack: 0 passed, 1 failed")
        return 1

    server = None

    def out_of_time(signum, frame):
        raise TimeoutError(f"the test ran past {TIME_LIMIT} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT)
    with tempfile.TemporaryDirectory() as tmp:
        body_file = os.path.join(tmp, "verify.json")
        with open(vec("dcap-qvl/tdx_quote"), "rb") as f:
            quote = f.read().hex()
        with open(body_file, "w") as f:
            json.dump({"quote": quote, "event_log": "[]"}, f)
        try:
            server = Server(dstack)
            good_requests_succeed(server, body_file, "before any attack")
            for attack in (flood_one_address, announced_bodies, many_idle_addresses):
                try:
                    attack(server, body_file)
                except Exception as e:  # one broken attack must not hide the others' results
                    case(f"{attack.__name__} ran to the end", False, repr(e))
                time.sleep(0.5)  # let the server see the closes
            good_requests_succeed(server, body_file, "after the attacks")
            case("the server is still running", server.alive(), server.log_tail())
        except Exception as e:
            case("the test ran to the end", False, repr(e))
        finally:
            signal.alarm(0)
            if server:
                if results["failed"]:
                    print("server log (last lines):\n" + server.log_tail())
                server.stop()
    print(f"test_serve_attack: {results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
