"""The host side of tests/mains_fw.py: the firmware with a mains meter on MQTT, started in the
background, its JSON rows collected as they come so that a test can feed the meter from the
simulator's truth while it runs."""
import json
import subprocess
import threading
import time

from conftest import MICROPYTHON, ROOT, mpy_env


class MainsFirmware:
    def __init__(self, port, seconds, cfg):
        self.rows = []
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=1m", str(ROOT / "tests" / "mains_fw.py"),
             json.dumps({"port": port, "seconds": seconds, "cfg": cfg})],
            cwd=ROOT, env=mpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=lambda: self.rows.extend(
            json.loads(line) for line in self.proc.stdout if line.startswith("{")), daemon=True)
        self._reader.start()
        self._t0 = time.monotonic()

    def running(self, limit_s):
        """True while the firmware runs, for at most limit_s real seconds."""
        return self.proc.poll() is None and time.monotonic() - self._t0 < limit_s

    def last(self):
        """The latest row with the simulator's time, or None before the first."""
        return next((r for r in reversed(self.rows) if "t" in r), None)

    def finish(self):
        """Waits for the end: (the rows with a time, the firmware's log lines, the lists of
        mains* modules loaded before the network and at the end)."""
        self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.returncode == 0, self.proc.stderr.read()[-3000:]
        samples = [r for r in self.rows if "t" in r]
        log = [r["log"] for r in self.rows if "log" in r]
        loaded = [r["loaded"] for r in self.rows if "loaded" in r]
        return samples, log, loaded
