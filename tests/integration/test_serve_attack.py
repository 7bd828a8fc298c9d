#!/usr/bin/env python3
"""Integration test: `dstack verify serve` keeps serving others while clients try to exhaust it.

usage: python3 tests/integration/test_serve_attack.py BUILD_DIR

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
closed idle connections to make room). Raises RLIMIT_NOFILE for itself and the server (about 2400
descriptors are held at once). Vectors from $DSTACK_VECTORS (harness.py). Python 3 standard
library plus the curl binary; bounded in time (a watchdog alarm ends the whole script), closes
every socket, and the harness stops the server.
"""

import errno
import json
import os
import resource
import select
import signal
import socket
import time

import harness  # next to this file

TDX_NOW = "1752919234"
TIME_LIMIT = 240          # seconds for the whole test
PER_ADDRESS_LIMIT = 64    # http::ServerOptions::max_connections_per_address's default
MAX_CONNECTIONS = 1024    # http::ServerOptions::max_connections's default
MAX_BODY = 2 * 1024 * 1024  # verify serve's request body limit
DESCRIPTORS_NEEDED = 2400   # 700 + 160 + 1088 held sockets at most, the server's side of them, curl

h = None  # the Harness, set by main()


def raise_fd_limit(needed):
    """Raises this process's descriptor limit (the server, started later, inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def curl(url, body_file=None):
    """Real curl from 127.0.0.1; returns (HTTP status, body), status 0 when curl failed."""
    headers = ["Content-Type: application/json"] if body_file else []
    return h.curl(url, data_file=body_file, headers=headers, timeout=30, interface="127.0.0.1")


def good_requests_succeed(server, body_file, label):
    status, text = curl(server.url + "/health")
    h.check(f"{label}: GET /health from 127.0.0.1 answered 200",
            status == 200 and text and json.loads(text) == {"status": "ok", "service": "dstack-verifier"}, (status, text))
    status, text = curl(server.url + "/verify", body_file)
    try:
        details = json.loads(text)["details"] if status == 200 else {}
    except ValueError:
        details = {}
    h.check(f"{label}: POST /verify from 127.0.0.1 verified the quote",
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
            held.append(connect_from("127.0.0.2", server.address.port, partial if i % 7 >= 5 else b""))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, "700 connections opened from 127.0.0.2")
        ended = ended_by_server(held)
        refused_503 = sum(1 for data in ended.values() if data.startswith(b"HTTP/1.1 503 "))
        kept = len(held) - len(ended)
        print(f"     127.0.0.2: {kept} connections kept, {len(ended)} ended by the server ({refused_503} with a 503)")
        h.check(f"127.0.0.2 kept at most {PER_ADDRESS_LIMIT} connections, the others refused",
                1 <= kept <= PER_ADDRESS_LIMIT and len(ended) >= len(held) - PER_ADDRESS_LIMIT,
                f"kept {kept}, ended by the server {len(ended)} (503: {refused_503})")
        sample = next((d for d in ended.values() if d.startswith(b"HTTP/1.1 503 ")), b"")
        h.check("a refused connection is told why (503, too many connections from your address)",
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
            held.append(connect_from(f"127.0.0.{3 + i % 4}", server.address.port, head))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, "160 x 2 MiB announced, 10 bytes sent")
        ended = ended_by_server(held)
        h.check("no announcer was refused for what it only announced",
                len(ended) == 0, f"{len(ended)} answered or closed, e.g. {next(iter(ended.values()), b'')[:200]}")
    finally:
        close_all(held)


def many_idle_addresses(server, body_file):
    """64 idle connections from each of 17 addresses: 1088, more than max_connections."""
    held = []
    try:
        for i in range(17 * PER_ADDRESS_LIMIT):
            held.append(connect_from(f"127.0.0.{10 + i % 17}", server.address.port))
        time.sleep(1.0)
        good_requests_succeed(server, body_file, f"{len(held)} idle connections from 17 addresses")
        time.sleep(0.3)
        ended = ended_by_server(held)
        overflow = len(held) - MAX_CONNECTIONS
        print(f"     {len(ended)} of {len(held)} idle connections closed by the server")
        h.check("idle connections were closed to make room, none answered 503",
                len(ended) >= overflow and not any(d.startswith(b"HTTP/1.1 503") for d in ended.values()),
                f"{len(ended)} of {len(held)} closed by the server, expected at least {overflow}")
    finally:
        close_all(held)


def out_of_time(signum, frame):
    # SystemExit, not an Exception: no group catches it, so the whole script stops here (the
    # harness records the failure and stops the server) instead of running on without a limit.
    raise SystemExit(f"the test ran past {TIME_LIMIT} s")


def main(harness_):
    global h
    h = harness_
    limit = raise_fd_limit(4096)
    if limit != resource.RLIM_INFINITY and limit < DESCRIPTORS_NEEDED:
        h.check(f"setup: RLIMIT_NOFILE allows the {DESCRIPTORS_NEEDED} descriptors this test holds", False,
                f"RLIMIT_NOFILE is {limit} and its hard limit does not allow more (ulimit -Hn)")
        return
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT)
    try:
        with h.group("the test"):  # a missing vector makes this a SKIP, never a pass
            body_file = os.path.join(h.tmpdir("requests"), "verify.json")
            with open(h.vector("dcap-qvl/tdx_quote"), "rb") as f:
                quote = f.read().hex()
            with open(body_file, "w") as f:
                json.dump({"quote": quote, "event_log": "[]"}, f)
            with h.server([h.dstack, "verify", "serve", "--listen", "127.0.0.1:0", "--collateral",
                           h.vector("dcap-qvl/tdx_quote_collateral.json"), "--now", TDX_NOW, "--skip-os-image"],
                          ready=r"listening on (tcp:127\.0\.0\.1:\d+)", name="verify serve") as server:
                good_requests_succeed(server, body_file, "before any attack")
                for attack in (flood_one_address, announced_bodies, many_idle_addresses):
                    with h.group(attack.__name__):  # one broken attack must not hide the others' results
                        attack(server, body_file)
                    time.sleep(0.5)  # let the server see the closes
                good_requests_succeed(server, body_file, "after the attacks")
                h.check("the server is still running", server.alive(), server.log_tail())
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    harness.main(main, needs=["curl"])
