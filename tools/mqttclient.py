"""A small MQTT 3.1.1 client (QoS 0) for host tools and tests, on plain sockets: the grid
responder, the compliance report and the test suite talk to mosquitto with it, so none of
them needs a client library. A reader thread hands each PUBLISH to deliver()."""

import socket
import struct
import threading
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the peer")
        buf += chunk
    return buf


def read_packet(sock):
    """(first byte, body) of one MQTT packet from a blocking socket; raises on EOF."""
    head = recv_exact(sock, 1)[0]
    n = shift = 0
    while True:
        b = recv_exact(sock, 1)[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return head, recv_exact(sock, n)
        shift += 7


class Mqtt:
    """Connects, subscribes, publishes; on_message(topic, payload) runs in the reader
    thread (subclasses override deliver() to see the retain flag too)."""

    def __init__(self, host, port, client_id, user=None, password=None, on_message=None,
                 keepalive_s=60):
        self.sock = socket.create_connection((host, port), timeout=5)
        flags = 0x02
        payload = mqtt_str(client_id)
        if user is not None:
            flags |= 0x80
            payload += mqtt_str(user)
            if password is not None:
                flags |= 0x40
                payload += mqtt_str(password)
        var = mqtt_str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
        self.sock.sendall(b"\x10" + varint(len(var) + len(payload)) + var + payload)
        head, body = read_packet(self.sock)
        if head != 0x20 or body[1] != 0:
            raise ConnectionError("broker refused the connection: %r" % body)
        self.on_message = on_message
        self.lock = threading.Lock()
        self.subacks = 0
        self.closed = False
        self._pid = 0
        self.sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()
        if keepalive_s:
            threading.Thread(target=self._ping, args=(keepalive_s / 2,), daemon=True).start()

    def deliver(self, topic, payload, retain):
        if self.on_message:
            self.on_message(topic, payload)

    def _reader(self):
        try:
            while True:
                head, body = read_packet(self.sock)
                if head & 0xF0 == 0x30:
                    n = struct.unpack("!H", body[:2])[0]
                    off = 2 + n + (2 if head & 0x06 else 0)
                    self.deliver(body[2:2 + n].decode(), body[off:], bool(head & 1))
                elif head == 0x90:
                    with self.lock:
                        self.subacks += 1
        except (OSError, ConnectionError):
            self.closed = True

    def _ping(self, every_s):
        while not self.closed:
            time.sleep(every_s)
            try:
                with self.lock:
                    self.sock.sendall(b"\xc0\x00")
            except OSError:
                return

    def subscribe(self, topic, timeout=5):
        self._pid += 1
        body = struct.pack("!H", self._pid) + mqtt_str(topic) + b"\x00"
        with self.lock:
            want = self.subacks + 1
            self.sock.sendall(b"\x82" + varint(len(body)) + body)
        t0 = time.monotonic()
        while True:
            with self.lock:
                if self.subacks >= want:
                    return
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("no SUBACK for %s" % topic)
            time.sleep(0.01)

    def publish(self, topic, payload, retain=False):
        if isinstance(payload, str):
            payload = payload.encode()
        body = mqtt_str(topic) + payload
        with self.lock:
            self.sock.sendall(bytes([0x30 | (1 if retain else 0)]) + varint(len(body)) + body)

    def close(self):
        self.closed = True
        try:
            with self.lock:
                self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()
