"""A mosquitto broker on a free loopback port with its own config, started and stopped by
whoever needs one (the tests, tools/heapfit.py); `make` installs mosquitto when root."""
import getpass
import os
import socket
import subprocess
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
