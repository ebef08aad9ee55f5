"""The metering modules build for the ESP32 (xtensawin native emitter), and the .mpy the host
builds from them measures exactly what the .py does."""
import subprocess

import numpy as np
import pytest

from conftest import HOST_MARCH, HOST_MPY_CROSS, MPY_CROSS, ROOT, WORD_BITS, run_mpy

MODULES = ["rms", "meter"]


def cross(src, out, arch):
    tool = HOST_MPY_CROSS if arch == HOST_MARCH else MPY_CROSS
    return subprocess.run([tool, f"-march={arch}", "-o", str(out), str(src)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", MODULES)
def test_builds_for_xtensawin(name, tmp_path):
    out = tmp_path / f"{name}.mpy"
    proc = cross(ROOT / "firmware" / f"{name}.py", out, "xtensawin")
    assert proc.returncode == 0, proc.stderr
    # header: 'M', then for a module with native code the arch in the high bits of byte 2
    # (MP_NATIVE_ARCH_XTENSAWIN = 10); meter.py is bytecode only
    head = out.read_bytes()[:4]
    assert head[0] == ord("M")
    assert head[2] >> 2 == (10 if name == "rms" else 0)


def test_the_build_rejects_what_the_esp32_cannot_run(tmp_path):
    # An int constant past 2**30 is a heap object on the ESP32: viper cannot mix it with a
    # native int. The xtensawin build must refuse it, which is what makes the check above
    # worth having; the 32-bit host port refuses it at run time as the board would (a
    # 64-bit port, with 62-bit small ints, would run it and hide the defect).
    src = tmp_path / "wide.py"
    src.write_text("import micropython\n"
                   "@micropython.viper\n"
                   "def f(a: int) -> int:\n"
                   "    return a ^ 0x80000000\n")
    run = run_mpy(f"exec(open({str(src)!r}).read()); print(f(1))", check=False)
    if WORD_BITS == 32:
        assert run.returncode != 0 and "ViperTypeError" in run.stdout + run.stderr, run
    else:
        assert run.stdout.strip() == str(1 ^ 0x80000000)
    proc = cross(src, tmp_path / "wide.mpy", "xtensawin")
    assert proc.returncode != 0 and "ViperTypeError" in proc.stderr


RUN = r"""
import sys, array
if %r:
    sys.path.insert(0, %r)
import meter, esp32_dinrail as board
print(meter.__file__)
nch = len(board.CHANNELS)
buf = array.array('H', [0] * (330 * nch))
with open(%r, 'rb') as f:
    f.readinto(buf)
m = meter.Meter(board.CHANNELS, board.ADC_SLOT_US, 120, 60)
m.process(buf, 330)
print(m.valid, m.vrms_mv, list(m.irms_ma), list(m.p_w), list(m.pf_x1000), m.total_w)
"""


def test_mpy_build_measures_the_same(tmp_path):
    for name in MODULES:
        proc = cross(ROOT / "firmware" / f"{name}.py", tmp_path / f"{name}.mpy", HOST_MARCH)
        assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(2)
    t = np.arange(330 * 6) * 35e-6
    samples = 2048 + 1500 * np.sin(2 * np.pi * 60 * t) + rng.normal(0, 2, t.size)
    path = tmp_path / "buf.bin"
    path.write_bytes(np.clip(np.round(samples), 0, 4095).astype("<u2").tobytes())
    py = run_mpy(RUN % (False, "", str(path))).stdout.splitlines()
    mpy = run_mpy(RUN % (True, str(tmp_path), str(path))).stdout.splitlines()
    assert py[0].endswith("meter.py") and mpy[0].endswith("meter.mpy")
    assert py[1] == mpy[1] and "[0, 0, 0" not in py[1]
