"""pytest orchestrates; firmware code runs under the real MicroPython unix port."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
# The firmware runs on the 32-bit port (the ESP32's word size); see tools/toolchain.py.
from toolchain import (MICROPYTHON, MPY_CROSS, MPREMOTE, HOST_MPY_CROSS, HOST_MARCH,  # noqa: E402
                       WHEEL_MICROPYTHON, WORD_BITS)
# .frozen first keeps the port's own asyncio (`import simboard` is the simulated board);
# tests/ last, for test-only modules such as gapprobe.
MICROPYPATH = ":".join([".frozen", str(ROOT / "firmware"), str(ROOT / "boards"),
                        str(ROOT / "lib"), str(ROOT / "tools"), str(ROOT / "tests")])
# Close to what an ESP32-WROOM build leaves free once Wi-Fi is up (see README).
HEAP = "128k"

# hypothesis (pinned) also draws constants it finds in the local modules loaded so far, so the
# cases a seeded property or fuzz test generates would depend on which test files ran before
# it. Kept empty, a seed gives the same cases whatever runs first.
from hypothesis.internal.conjecture import providers as _hypothesis_providers  # noqa: E402
_hypothesis_providers._get_local_constants = lambda: _hypothesis_providers._local_constants


def mpy_env(extra_path=()):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([MICROPYPATH, *map(str, extra_path)])
    return env


def run_mpy(code=None, script=None, args=(), heap=HEAP, timeout=300, check=True,
            extra_path=(), cwd=None):
    """Run code (a string) or a script under the unix port; return CompletedProcess."""
    cmd = [MICROPYTHON, "-X", f"heapsize={heap}"]
    cmd += ["-c", code] if code is not None else [str(script)]
    cmd += list(map(str, args))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=mpy_env(extra_path), cwd=cwd or ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"micropython failed ({proc.returncode}):\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def mpy():
    return run_mpy
