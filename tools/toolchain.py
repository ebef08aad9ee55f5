"""Which MicroPython the host tools and tests run the firmware on. The ESP32 is 32-bit, so
the firmware and the simulator run on the 32-bit unix port that `make` builds from
vendor/ (tools/build_unix32.sh, build/unix32/): only there are object sizes, small ints,
viper ints and the tick period the board's. The pinned 64-bit wheel (.venv) stays for what
needs it (ssl for the TLS tests) and is the fallback where no 32-bit build can be made;
then WORD_BITS says 64 and every memory figure is marked as 64-bit."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
UNIX32 = ROOT / "build" / "unix32"

WHEEL_MICROPYTHON = str(VENV_BIN / "micropython")     # 64-bit, with ssl
MPY_CROSS = str(VENV_BIN / "mpy-cross")               # pinned; cross-compiles for the ESP32
MPREMOTE = str(VENV_BIN / "mpremote")

if (UNIX32 / "micropython").exists() and not os.environ.get("PANELCAP_UNIX64"):
    MICROPYTHON = str(UNIX32 / "micropython")
    HOST_MPY_CROSS = str(UNIX32 / "mpy-cross")
    HOST_MARCH = "x86"
    WORD_BITS = 32
else:
    MICROPYTHON = WHEEL_MICROPYTHON
    HOST_MPY_CROSS = MPY_CROSS
    HOST_MARCH = "x64"
    WORD_BITS = 64


def describe():
    """One line naming the MicroPython the firmware runs on, for make sim and make bench."""
    import subprocess
    # sys.version: "3.4.0; MicroPython v1.29.0-preview on 2026-07-05"; the wheel's names a
    # commit instead of a tag, so fall back to the release numbers.
    version = subprocess.run(
        [MICROPYTHON, "-c", "import sys; v = sys.version.split('MicroPython ')[-1].split()[0];"
         " print(v if v.startswith('v') else 'v%d.%d.%d' % sys.implementation.version[:3])"],
        capture_output=True, text=True).stdout.strip()
    return "%d-bit unix port %s" % (WORD_BITS, version or "(version unknown)")
