"""A micropython process that answers each JSON line it is sent with one JSON line: the
drivers of the property tests (shed_props_driver.py), the parsers' fuzzing (fuzz_driver.py)
and the grid's (grid_fuzz_driver.py). Thousands of cases run in one process; an answer that
does not come within stall_s is a stall, and the test says so with the driver's stderr."""
import json
import select
import subprocess
from pathlib import Path

from conftest import MICROPYTHON


class JsonPipe:
    def __init__(self, script, heap, env, cwd, args=(), errors=None, error=AssertionError):
        self.name = Path(script).name
        self._error = error
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=" + heap, str(script)] + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=cwd, errors=errors)

    def ask(self, line, stall_s=60, what=""):
        """Sends one line (JSON text), returns the answer parsed; raises error if none."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], stall_s)
        answer = self.proc.stdout.readline() if ready else ""
        if not answer:
            self.close()
            raise self._error("%s died or stalled%s: %s" % (
                self.name, " on " + what if what else "", self.proc.stderr.read()[-2000:]))
        return json.loads(answer)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
