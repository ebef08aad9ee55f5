"""Test helpers for MQTT: a mosquitto broker on a free loopback port (own config, started and
stopped by the test), a tiny MQTT 3.1.1 client in plain CPython sockets, and two misbehaving
brokers: a tarpit (accepts TCP, never answers) and a dropper (answers, then cuts the
connection in the middle of the first PUBLISH)."""
import getpass
import json
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Broker:
    """mosquitto on 127.0.0.1:port with a generated config; users: {name: password}."""

    def __init__(self, workdir, port=None, users=None):
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.proc = None
        self.conf = self.dir / ("mosquitto-%d.conf" % self.port)
        # Started as root, mosquitto would switch to its own user and lose the test's files.
        lines = ["user %s" % getpass.getuser(),
                 "listener %d 127.0.0.1" % self.port, "persistence false",
                 "log_dest file %s" % (self.dir / ("mosquitto-%d.log" % self.port)),
                 "log_type error", "log_type warning", "log_type notice"]
        if users:
            pw = self.dir / ("passwd-%d" % self.port)
            pw.write_text("")
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True,
                               capture_output=True)
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous false", "password_file %s" % pw]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError("mosquitto did not start on port %d" % self.port)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def read_packet(sock):
    """(first byte, body) of one MQTT packet from a blocking socket; raises on EOF."""
    head = _recv_exact(sock, 1)[0]
    n = 0
    shift = 0
    while True:
        b = _recv_exact(sock, 1)[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return head, _recv_exact(sock, n)


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class Client:
    """A small MQTT 3.1.1 client (QoS 0) for tests; a thread collects what arrives."""

    def __init__(self, port, client_id="pytest", user=None, password=None, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        flags = 0x02
        payload = _str(client_id)
        if user is not None:
            flags |= 0x80
            payload += _str(user)
            if password is not None:
                flags |= 0x40
                payload += _str(password)
        var = _str("MQTT") + bytes([4, flags, 0, 0])
        self.sock.sendall(bytes([0x10]) + _varint(len(var) + len(payload)) + var + payload)
        head, body = read_packet(self.sock)
        if head != 0x20 or body[1] != 0:
            raise ConnectionError("CONNACK refused: %r" % body)
        self.messages = []         # (topic, payload bytes, retain)
        self.lock = threading.Lock()
        self._pid = 0
        self._subacks = 0
        self.closed = False
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        try:
            while True:
                head, body = read_packet(self.sock)
                if head & 0xF0 == 0x30:
                    n = struct.unpack("!H", body[:2])[0]
                    topic = body[2:2 + n].decode()
                    off = 2 + n + (2 if head & 0x06 else 0)
                    with self.lock:
                        self.messages.append((topic, body[off:], bool(head & 1)))
                elif head == 0x90:
                    with self.lock:
                        self._subacks += 1
        except (OSError, ConnectionError):
            self.closed = True

    def subscribe(self, topic, timeout=5):
        self._pid += 1
        body = struct.pack("!H", self._pid) + _str(topic) + b"\x00"
        with self.lock:
            want = self._subacks + 1
        self.sock.sendall(bytes([0x82]) + _varint(len(body)) + body)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if self._subacks >= want:
                    return
            time.sleep(0.01)
        raise TimeoutError("no SUBACK")

    def publish(self, topic, payload, retain=False):
        if isinstance(payload, str):
            payload = payload.encode()
        body = _str(topic) + payload
        self.sock.sendall(bytes([0x30 | (1 if retain else 0)]) + _varint(len(body)) + body)

    def take(self):
        with self.lock:
            out = self.messages
            self.messages = []
        return out

    def wait_for(self, pred, timeout=10):
        """First message (topic, payload, retain) for which pred() holds, keeping the others."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                for i, m in enumerate(self.messages):
                    if pred(m):
                        del self.messages[i]
                        return m
            time.sleep(0.02)
        return None

    def wait_json(self, topic, pred=lambda d: True, timeout=10):
        def ok(m):
            if m[0] != topic:
                return False
            try:
                return pred(json.loads(m[1]))
            except ValueError:
                return False
        m = self.wait_for(ok, timeout)
        return None if m is None else json.loads(m[1])

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()


class _Server:
    def __init__(self):
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.conns = []
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, conn):
        pass

    def stop(self):
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.lsock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Tarpit(_Server):
    """Accepts TCP connections and never sends a byte (nor reads one)."""


class Dropper(_Server):
    """Answers CONNECT and SUBSCRIBE, then resets the connection partway into the first
    PUBLISH it receives (after `cut_after` bytes of it)."""

    def __init__(self, cut_after=20):
        self.cut_after = cut_after
        self.cuts = 0
        super().__init__()

    def serve(self, conn):
        conn.settimeout(10)
        try:
            head, body = read_packet(conn)
            if head != 0x10:
                return
            conn.sendall(b"\x20\x02\x00\x00")
            got = b""
            while True:
                got += conn.recv(4096)
                if got and got[0] == 0x82 and len(got) >= 2 and len(got) >= 2 + got[1]:
                    pid = got[2:4]
                    conn.sendall(b"\x90\x03" + pid + b"\x00")
                    got = got[2 + got[1]:]
                    break
            while True:
                i = got.find(b"\x30") if got else -1
                if i < 0:
                    i = got.find(b"\x31")
                if i >= 0 and len(got) - i >= self.cut_after:
                    break
                chunk = conn.recv(4096)
                if not chunk:
                    return
                got += chunk
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.cuts += 1
            conn.close()
        except (OSError, ConnectionError, IndexError):
            pass
