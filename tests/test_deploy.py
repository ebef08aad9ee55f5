"""End to end with the real tools: the unix port behind a socat pty stands in for the board;
`make deploy` (mpremote) puts the built firmware on it; the console is driven with
`mpremote exec`; the firmware boots from the deployed files and runs the saved config."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import HOST_MARCH, MPREMOTE, ROOT

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat (make debs)")


_XTENSAWIN = 10     # MicroPython's native arch number in an .mpy header (flags >> 2)


def test_build_cross_compiles_for_the_esp32_and_keeps_boot_and_main_source(tmp_path):
    proc = subprocess.run(["make", "--no-print-directory", "build", "BOARD=esp32_dinrail"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = ROOT / "build" / "esp32_dinrail-xtensawin"
    modules = {p.stem for p in (ROOT / "firmware").glob("*.py")} - {"boot", "main"}
    assert {p.stem for p in out.glob("*.mpy")} == modules | {"board"}
    for name in ("boot.py", "main.py"):
        assert (out / name).read_text() == (ROOT / "firmware" / name).read_text()
    native = []
    for path in out.glob("*.mpy"):
        head = path.read_bytes()[:4]
        assert head[:1] == b"M", path
        if head[2] >> 2:
            native.append((path.stem, head[2] >> 2))
    # Modules with native or viper code carry the ESP32's architecture.
    assert native and all(arch == _XTENSAWIN for _, arch in native), native


class StandIn:
    def __init__(self, tmp_path, romfs=True):
        self.fs = tmp_path / "fs"
        self.port = str(tmp_path / "port")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "standin_board.py"), "--fs", str(self.fs),
             # the stand-in's documented default heap (128 KB, an ESP32's), as an installer
             # would run it: boot, deploy and the console fit on the 32-bit port
             "--link", self.port, "--inject", "36=1970,35=300",
             # a romfs partition (boards/PANELCAP_ESP32/) by default; none, as stock firmware
             *([] if romfs else ["--romfs="])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(50):
            if os.path.exists(self.port):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the stand-in's pty did not appear")
        time.sleep(0.5)

    def make(self, *targets, **vars):
        args = ["make", "--no-print-directory", "BOARD=esp32_dinrail", "MPY_ARCH=" + HOST_MARCH,
                "PORT=" + self.port, "RESUME=resume", *["%s=%s" % kv for kv in vars.items()],
                *targets]
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    def exec(self, code, check=True):
        proc = subprocess.run([MPREMOTE, "connect", self.port, "resume", "exec", code],
                              capture_output=True, text=True, timeout=30)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.replace("\r\n", "\n")

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def board(tmp_path):
    b = StandIn(tmp_path)
    yield b
    b.stop()


def test_deploy_configure_and_run_on_the_stand_in(board, tmp_path):
    # Copies left on the filesystem by an older install would shadow the image (the
    # filesystem comes first on sys.path): deploy removes them.
    board.fs.mkdir(parents=True, exist_ok=True)
    (board.fs / "meter.py").write_text("raise ImportError('stale meter.py')\n")
    (board.fs / "shed.mpy").write_bytes(b"stale")
    (board.fs / "microdot").mkdir()
    (board.fs / "microdot" / "microdot.mpy").write_bytes(b"stale")
    out = board.make("deploy")
    assert "deploy: into the board's ROMFS partition" in out and "ROMFS image deployed" in out
    assert sorted(os.listdir(board.fs)) == ["boot.py", "main.py"]
    time.sleep(1.5)
    # The code runs in place from the romfs partition, the status page's microdot too.
    out = board.exec("import os, board, web; print(board.__file__, sorted(os.listdir('/rom'))[:3]); "
                     "import microdot; print(microdot.__file__)")
    assert "/rom/board.mpy" in out and "/rom/microdot/__init__.mpy" in out, out
    # Every module of the firmware is in the image, compiled for the board.
    listing = board.exec("import os; print(' '.join(os.listdir('/rom')))").split()
    modules = {p.stem for p in (ROOT / "firmware").glob("*.py")} - {"boot", "main"}
    assert {f[:-4] for f in listing if f.endswith(".mpy")} == modules | {"board"}

    # First boot: no config on flash, so safe mode: outputs off, the pilot pausing the EV.
    out = board.exec("import app, machine; print(app.last.safe_reason); "
                     "print(sorted(machine.levels.items()), machine.duty)")
    assert "no configuration saved yet" in out
    assert "(14, 1), (19, 1), (25, 0), (26, 0), (27, 0)" in out   # K4 is active low: 1 is off
    assert "{19: 65535}" in out
    # It is the deployed firmware that runs, not the repository's.
    assert "config.mpy" in board.exec("import config; print(config.__file__)")

    # Configure through the console: mistakes print one line and change nothing.
    out = board.exec("cfg.set('panel_rating_a', '125')")
    assert out.strip() == ("error: panel_rating_a must be an int in 15..2000 A, got '125'")
    out = board.exec("cfg.set('limit_w', 25000)")
    assert out.strip().startswith("error: limit_w must be at most 80 % of the panel rating")
    out = board.exec("cfg.set('panel_rating_a', 125)")
    code = re.search(r"cfg\.confirm\('(\d{4})'\)", out).group(1)
    assert "setpoint 19200 W -> 24000 W" in out
    out = board.exec("cfg.confirm('%04d'); cfg.set('limit_w', 20000); cfg.confirm('%s')" % (
        (int(code) + 1) % 10000, "x"))
    # Nothing applied yet: the rating stays 100 A, so 20000 W is still above its 80 %.
    assert out.count("error:") == 3 and out.count("panel_rating_a stays 100") == 2
    out = board.exec("cfg.confirm('%s')" % code)
    assert "panel_rating_a = 125, setpoint 24000 W" in out
    out = board.exec("cfg.set('loads.water_heater.min_off_s', 120); cfg.set('band_pct', 7); "
                     "cfg.save()")
    assert "saved config.json" in out, out
    assert (board.fs / "config.json").exists() and not (board.fs / "config.json.tmp").exists()

    # config-pull gets the same file the board wrote.
    pulled = tmp_path / "pulled.json"
    board.make("config-pull", CONFIG=str(pulled))
    assert pulled.read_text() == (board.fs / "config.json").read_text()

    # Reset: the controller boots with that configuration and runs.
    board.exec("import machine; machine.reset()", check=False)
    time.sleep(4)
    out = board.exec("import app, machine; a = app.last; print(a.safe_reason, a.setpoint_w, "
                     "a.cfg['band_pct'], a.limits.setpoint_w, a.sampler.windows, "
                     "a.supervisor.feeds, a.bindings[0].load.min_off_ms, machine.wdt_timeouts)")
    fields = out.split()
    assert fields[:5] == ["None", "24000", "7", "24000", fields[4]], out
    assert int(fields[4]) >= 2 and int(fields[5]) >= 2, out   # sampling, watchdog fed
    assert fields[6] == "120000"
    assert "[8000, 1800000]" in out          # Ctrl-C stretched the watchdog for the installer
    out = board.exec("from console import *; status()")
    assert "stopped: every output safe" in out and "setpoint 24000 W (panel 125 A" in out

    # config-push: a pushed file may not raise the protected setpoint.
    cfg = pulled.read_text().replace('"panel_rating_a": 125', '"panel_rating_a": 200')
    assert cfg != pulled.read_text()
    pushed = tmp_path / "push.json"
    pushed.write_text(cfg)
    out = board.make("config-push", CONFIG=str(pushed))
    assert "error: panel_rating_a would change 125 -> 200: protected" in out
    assert '"panel_rating_a": 125' in (board.fs / "config.json").read_text()
    time.sleep(3)                               # config-push ends with a reset: let it boot
    # ... while other settings go through, and the board restarts with them.
    pushed.write_text(pulled.read_text().replace('"band_pct": 7', '"band_pct": 11'))
    out = board.make("config-push", CONFIG=str(pushed))
    assert "saved config.json (band_pct)" in out, out
    time.sleep(3)
    out = board.exec("import app; print(app.last.cfg['band_pct'], app.last.safe_reason)")
    assert out.split() == ["11", "None"]


def test_a_corrupt_config_boots_into_safe_mode(board):
    board.make("deploy")
    time.sleep(1)
    (board.fs / "config.json").write_text('{"version": 2, "panel_rating_a": 1')
    board.exec("import machine; machine.reset()", check=False)
    time.sleep(2)
    out = board.exec("import app, machine; print(app.last.safe_reason); "
                     "print(sorted(machine.levels.items()), machine.duty, machine.wdt_timeouts)")
    assert "config file is corrupt (not JSON" in out
    assert "(14, 1), (19, 1), (25, 0), (26, 0), (27, 0)" in out and "{19: 65535}" in out
    assert "[]" in out                          # no watchdog: the REPL stays free
    out = board.exec("status()")
    assert "SAFE MODE: every controllable load shed: config file is corrupt" in out


def test_a_board_without_romfs_gets_the_mpy_files(tmp_path):
    """Stock MicroPython has no romfs partition: the firmware's .mpy files go to the
    filesystem and load into RAM, and deploy says what that costs."""
    b = StandIn(tmp_path, romfs=False)
    try:
        (b.fs).mkdir(parents=True, exist_ok=True)
        (b.fs / "meter.py").write_text("raise ImportError('stale meter.py')\n")
        out = b.make("deploy")
        assert "deploy: this board's MicroPython has no ROMFS partition" in out, out
        files = set(os.listdir(b.fs))
        modules = {p.stem for p in (ROOT / "firmware").glob("*.py")} - {"boot", "main"}
        assert {f[:-4] for f in files if f.endswith(".mpy")} == modules | {"board"}
        assert not [f for f in files if f.endswith(".py") and f not in ("main.py", "boot.py")]
        assert sorted(os.listdir(b.fs / "microdot")) == ["__init__.mpy", "helpers.mpy",
                                                          "microdot.mpy"]
        time.sleep(1.5)
        out = b.exec("import app, config; print(app.last.safe_reason, config.__file__)")
        assert "no configuration saved yet" in out and "config.mpy" in out and "/rom" not in out
    finally:
        b.stop()
