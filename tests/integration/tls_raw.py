"""Raw TLS handshake messages for hostile-peer tests (Python 3 standard library only).

Python's ssl module cannot send a malformed key share, so these helpers write the records
themselves: a TLS 1.3 ClientHello whose secp256r1 key_share holds any bytes, and a TLS 1.2
ECDHE-ECDSA handshake up to a ClientKeyExchange holding any point. Nothing here encrypts: the
attacks end before the first encrypted record, where the server has to compute ECDH with the
point it was sent (or refuse it first). serve_bad_key_share plays the other side: a TLS 1.3 server
that hands our client any point as its share.

Also the P-256 points the tests send (curve arithmetic in plain integers, public data only).
"""

import os
import socket
import struct
import sys
import time

# ---- P-256 points (tests/vectors/p256_curve.py does the arithmetic) ----
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors"))
from p256_curve import G, N, P, lift_x, mul, on_curve  # noqa: E402,F401  (N: for the tests)
from p256_curve import be as be32, point_bytes as uncompressed  # noqa: E402

GX, GY = G


def _point_with_small_x():
    return next(point for point in map(lift_x, range(1, 1000)) if point is not None)


def bad_points():
    """(name, bytes) of P-256 public keys a peer must be refused for, each of its own kind."""
    g = (GX, GY)
    off_y = (GY + 1) % P
    assert not on_curve((GX, off_y))
    # x = p + x0 for a curve point (x0, y0) with small x0: x is not a field element, but reduced
    # mod p it is on the curve (a parser that reduces instead of refusing would accept it).
    small = _point_with_small_x()
    return [
        ("off-curve (G with y+1)", b"\x04" + be32(GX) + be32(off_y)),
        ("(0, 0)", b"\x04" + bytes(64)),
        ("x = p + x of a curve point", b"\x04" + be32(small[0] + P) + be32(small[1])),
        ("y = p", b"\x04" + be32(GX) + be32(P)),
        ("x, y = p", b"\x04" + be32(P) + be32(P)),
        ("all-ones coordinates", b"\x04" + b"\xff" * 64),
        ("point at infinity (00)", b"\x00"),
        ("compressed G (03 || x)", bytes([0x02 + (GY & 1)]) + be32(GX)),
        ("hybrid G (06/07 || x || y)", bytes([0x06 + (GY & 1)]) + be32(GX) + be32(GY)),
        ("uncompressed G without its last byte (64 bytes)", uncompressed(g)[:64]),
        ("uncompressed G with a trailing byte (66 bytes)", uncompressed(g) + b"\x00"),
        ("empty", b""),
    ]


def good_point():
    """A real public key: 7 * G (any scalar works; the server only needs a point on the curve)."""
    return uncompressed(mul(7))


# ---- records ----
HANDSHAKE, ALERT, CHANGE_CIPHER_SPEC, APPLICATION_DATA = 22, 21, 20, 23
SECP256R1 = 0x0017
ECDSA_SECP256R1_SHA256, RSA_PSS_RSAE_SHA256, RSA_PKCS1_SHA256 = 0x0403, 0x0804, 0x0401


def record(content_type, payload, version=0x0301):
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def handshake_message(kind, body):
    return struct.pack("!B", kind) + len(body).to_bytes(3, "big") + body


def _vector(data, length_bytes):
    return len(data).to_bytes(length_bytes, "big") + data


def _extension(kind, data):
    return struct.pack("!H", kind) + _vector(data, 2)


def client_hello(suites, extensions, version=0x0303):
    body = struct.pack("!H", version) + os.urandom(32) + _vector(os.urandom(32), 1)
    body += _vector(b"".join(struct.pack("!H", s) for s in suites), 2) + b"\x01\x00"
    body += _vector(b"".join(extensions), 2)
    return handshake_message(1, body)


def _signature_algorithms():
    algorithms = (ECDSA_SECP256R1_SHA256, RSA_PSS_RSAE_SHA256, RSA_PKCS1_SHA256)
    return _extension(13, _vector(b"".join(struct.pack("!H", a) for a in algorithms), 2))


def _supported_groups():
    return _extension(10, _vector(struct.pack("!H", SECP256R1), 2))


def tls13_client_hello(key_share):
    """TLS 1.3 only, secp256r1 only, with `key_share` as the client's secp256r1 share."""
    share = struct.pack("!H", SECP256R1) + _vector(key_share, 2)
    extensions = [
        _extension(43, _vector(struct.pack("!H", 0x0304), 1)),  # supported_versions: TLS 1.3
        _supported_groups(),
        _signature_algorithms(),
        _extension(51, _vector(share, 2)),  # key_share
    ]
    return record(HANDSHAKE, client_hello([0x1301, 0x1302, 0x1303], extensions))


def tls12_client_hello(suite=0xC02B):
    """TLS 1.2, secp256r1, uncompressed points; by default TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256."""
    extensions = [_supported_groups(), _extension(11, b"\x01\x00"), _signature_algorithms()]
    return record(HANDSHAKE, client_hello([suite], extensions))


def tls12_client_key_exchange(point):
    """ClientKeyExchange of ECDHE: the point as a 1-byte-length vector (RFC 8422 5.7)."""
    return record(HANDSHAKE, handshake_message(16, _vector(point, 1)), version=0x0303)


# ---- reading ----
class Peer:
    """One TCP connection to a TLS server, read record by record with an overall deadline."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.deadline = time.monotonic() + timeout
        self.buffer = b""
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, needed):
        while len(self.buffer) < needed and not self.closed:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server neither answered nor closed in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
        return len(self.buffer) >= needed

    def next_record(self):
        """(content_type, payload), or None when the server closed the connection."""
        if not self._fill(5):
            return None
        content_type, _, length = struct.unpack("!BHH", self.buffer[:5])
        if not self._fill(5 + length):
            return None
        payload = self.buffer[5:5 + length]
        self.buffer = self.buffer[5 + length:]
        return content_type, payload

    def handshake_until(self, last_kind):
        """Reads plaintext handshake records until message `last_kind`; returns (kinds, ending)
        where ending is None on success, else ("alert", level, description) or ("closed",)."""
        kinds = []
        data = b""
        while True:
            rec = self.next_record()
            if rec is None:
                return kinds, ("closed",)
            content_type, payload = rec
            if content_type == ALERT:
                return kinds, ("alert", payload[0], payload[1]) if len(payload) >= 2 else ("alert", None, None)
            if content_type != HANDSHAKE:
                return kinds, ("record", content_type)
            data += payload
            while len(data) >= 4:
                length = int.from_bytes(data[1:4], "big")
                if len(data) < 4 + length:
                    break
                kinds.append(data[0])
                data = data[4 + length:]
                if kinds[-1] == last_kind:
                    return kinds, None

    def ending(self):
        """What the server does next: ("alert", level, description), ("closed",) or
        ("record", content_type) for anything else."""
        while True:
            rec = self.next_record()
            if rec is None:
                return ("closed",)
            content_type, payload = rec
            if content_type == ALERT:
                return ("alert", payload[0], payload[1]) if len(payload) >= 2 else ("alert", None, None)
            if content_type == CHANGE_CIPHER_SPEC:
                continue  # TLS 1.3 middlebox compatibility
            return ("record", content_type)

    def ending_within(self, seconds):
        """ending(), or ("waiting",) when the peer says nothing for `seconds`: a peer that took the
        point we sent waits for our next message."""
        self.deadline = time.monotonic() + seconds
        try:
            return self.ending()
        except (TimeoutError, socket.timeout):
            return ("waiting",)


# ---- a hostile TLS 1.3 server ----
HELLO_RETRY_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def parse_client_hello(message):
    """(session_id, {extension type: data}) of a ClientHello handshake message."""
    body = message[4:]
    at = 2 + 32
    session_id = body[at + 1:at + 1 + body[at]]
    at += 1 + body[at]
    at += 2 + int.from_bytes(body[at:at + 2], "big")  # cipher suites
    at += 1 + body[at]  # compression methods
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    at += 2
    extensions = {}
    while at + 4 <= end:
        kind, length = struct.unpack("!HH", body[at:at + 4])
        extensions[kind] = body[at + 4:at + 4 + length]
        at += 4 + length
    return session_id, extensions


def client_key_share_groups(key_share_extension):
    groups, at = [], 2
    while at + 4 <= len(key_share_extension):
        group, length = struct.unpack("!HH", key_share_extension[at:at + 4])
        groups.append(group)
        at += 4 + length
    return groups


def server_hello(session_id, key_share_data, retry=False):
    """A TLS 1.3 ServerHello (TLS_AES_128_GCM_SHA256); with retry, a HelloRetryRequest, whose
    key_share names only the group the client must use."""
    extensions = _extension(43, struct.pack("!H", 0x0304)) + _extension(51, key_share_data)
    body = struct.pack("!H", 0x0303) + (HELLO_RETRY_RANDOM if retry else os.urandom(32))
    body += _vector(session_id, 1) + struct.pack("!HB", 0x1301, 0) + _vector(extensions, 2)
    return record(HANDSHAKE, handshake_message(2, body), version=0x0303)


def read_handshake_message(peer):
    """The next handshake message from a client (skipping its compatibility ChangeCipherSpec);
    None when it closed or sent anything else (an alert)."""
    data = b""
    while True:
        rec = peer.next_record()
        if rec is None:
            return None
        content_type, payload = rec
        if content_type == CHANGE_CIPHER_SPEC:
            continue
        if content_type != HANDSHAKE:
            return None
        data += payload
        if len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[1:4], "big"):
            return data


class _Accepted(Peer):
    def __init__(self, sock, timeout):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.deadline = time.monotonic() + timeout
        self.buffer = b""
        self.closed = False


def serve_bad_key_share(listener, point, timeout=5.0):
    """Accepts one client on `listener`, makes it use secp256r1 (a HelloRetryRequest if its first
    share is another group) and answers with `point` as the server's share. Returns what the client
    did next: ("alert", level, description), ("closed",), ("record", type) or ("waiting",) when it
    kept waiting for the server's next message (what a client that accepted the point does)."""
    sock, _ = listener.accept()
    peer = _Accepted(sock, timeout)
    try:
        hello = read_handshake_message(peer)
        if hello is None or hello[0] != 1:
            return ("no ClientHello",)
        session_id, extensions = parse_client_hello(hello)
        if SECP256R1 not in client_key_share_groups(extensions.get(51, b"")):
            peer.send(server_hello(session_id, struct.pack("!H", SECP256R1), retry=True))
            hello = read_handshake_message(peer)
            if hello is None or hello[0] != 1:
                return ("no second ClientHello",)
            session_id, extensions = parse_client_hello(hello)
            if SECP256R1 not in client_key_share_groups(extensions.get(51, b"")):
                return ("client ignored the HelloRetryRequest",)
        peer.send(server_hello(session_id, struct.pack("!H", SECP256R1) + _vector(point, 2)))
        return peer.ending_within(1.0)
    finally:
        peer.close()
