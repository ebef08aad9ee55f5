"""Test helpers for MQTT: a mosquitto broker on a free loopback port (tools/mqttbroker.py),
a tiny MQTT 3.1.1 client in plain CPython sockets, and two misbehaving
brokers: a tarpit (accepts TCP, never answers) and a dropper (answers, then cuts the
connection in the middle of the first PUBLISH). The client is tools/mqttclient.py's."""
import json
import socket
import struct
import subprocess
import threading
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from mqttclient import Mqtt, read_packet  # noqa: E402

from mqttbroker import MOSQUITTO, MOSQUITTO_PASSWD, Broker, free_port, wait_port  # noqa: E402,F401


class Client(Mqtt):
    """The host MQTT client (tools/mqttclient.py) keeping what arrives, for assertions."""

    def __init__(self, port, client_id="pytest", user=None, password=None, host="127.0.0.1"):
        self.messages = []         # (topic, payload bytes, retain)
        super().__init__(host, port, client_id, user, password, keepalive_s=0)

    def deliver(self, topic, payload, retain):
        with self.lock:
            self.messages.append((topic, payload, retain))

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


class JsonLinesProcess:
    """A micropython script started by a test; a thread parses its stdout, one JSON object
    a line, into handle(d). finish() waits for a clean exit."""

    def __init__(self, cmd, cwd, env):
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                d = json.loads(raw)
            except ValueError:
                d = {"raw": raw}
            self.handle(d)

    def handle(self, d):
        raise NotImplementedError

    def exited(self):
        return self.proc.poll() is not None and not self.thread.is_alive()

    def stderr_tail(self):
        return self.proc.stderr.read()[-3000:] if self.proc.poll() is not None else ""

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.thread.join(5)
        err = self.proc.stderr.read()
        assert self.proc.returncode == 0, err[-3000:]
        return err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
