"""A simulated day with MQTT on (tools/panelsim/run.py --mqtt, fast virtual time, a real
mosquitto): the firmware as shipped (.mpy), memory in use after collection flat from hour to
hour, telemetry arriving all day, and the heap an ESP32 leaves free."""
import re
import subprocess
import time

import pytest

from conftest import HEAP, MICROPYTHON, MPY_CROSS, ROOT
from mqtt_helpers import Broker, Client

HOUR_RE = re.compile(r"sim: hour (\d+)/\d+, heap in use (\d+) B")


def _build(tmp_path):
    """firmware/*.py and umqtt as .mpy (host arch: native and viper code must load here)."""
    out = tmp_path / "mpy"
    (out / "umqtt").mkdir(parents=True)
    for src in sorted((ROOT / "firmware").glob("*.py")):
        if src.stem in ("main", "boot"):
            continue
        subprocess.run([MPY_CROSS, "-O1", "-march=x64", "-o", str(out / (src.stem + ".mpy")),
                        str(src)], check=True)
    subprocess.run([MPY_CROSS, "-O1", "-o", str(out / "umqtt" / "simple.mpy"),
                    str(ROOT / "lib" / "umqtt" / "simple.py")], check=True)
    return out


def _run(mpy_dir, heap, hours, mqtt=None, timeout=150):
    env = {"MICROPYPATH": ":".join([".frozen", str(mpy_dir), str(ROOT / "boards"),
                                    str(ROOT / "tools")]), "PATH": "/usr/bin:/bin"}
    cmd = [MICROPYTHON, "-X", "heapsize=" + heap, str(ROOT / "tools/panelsim/run.py"),
           "--hours", str(hours)]
    if mqtt:
        cmd += ["--mqtt", mqtt]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    hours_used = [(int(h), int(b)) for h, b in HOUR_RE.findall(proc.stderr)]
    return proc, hours_used


def test_day_with_mqtt_heap_flat_and_telemetry_all_day(tmp_path):
    mpy = _build(tmp_path)
    heap = "256k"     # where the firmware without MQTT runs on this port (see the next test)
    base, base_hours = _run(mpy, heap, 3)
    assert base.returncode == 0, base.stderr[-2000:]
    with Broker(tmp_path) as broker:
        sub = Client(broker.port, "day")
        sub.subscribe("panelcap/state")
        proc, hours = _run(mpy, heap, 24, "127.0.0.1:%d" % broker.port)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "mqtt: connected" in proc.stderr
        time.sleep(1)       # the last messages in flight
        states = sub.take()
        sub.close()
    assert len(hours) == 23, proc.stderr[-2000:]
    used = [b for _, b in hours]
    print("heap in use after collection, per hour: %s" % used)
    print("without MQTT: %s; telemetry messages: %d" % ([b for _, b in base_hours],
                                                          len(states)))
    # Flat from hour to hour (after the first, which still holds start-up garbage paths).
    assert max(used[1:]) - min(used[1:]) <= 512, used
    assert used[-1] <= used[1] + 256, used
    # What MQTT adds is reported, not bounded here: the bound that matters is the ESP32's
    # heap for the whole firmware (the strict xfail below, still open).
    print("MQTT adds %d B on this port" % (used[1] - base_hours[1][1]))
    # One state per 10 simulated seconds all day: none lost to the queue in fast time.
    assert len(states) >= 8640 * 95 // 100, len(states)


@pytest.mark.xfail(strict=True, reason="open: on the 64-bit unix port the firmware with MQTT "
                   "needs more than an ESP32's 128 KB (objects are twice their ESP32 size)")
def test_day_with_mqtt_fits_esp32_heap(tmp_path):
    # The firmware gets 128 KB on top of the simulator's own measured footprint, as in
    # make sim (tools/run_sim.py).
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import run_sim
    # An ESP32's 128 KB explicitly: "auto" would give the MQTT build make sim's larger heap.
    heap = run_sim.FIRMWARE_HEAP + run_sim.simulator_footprint(run_sim.micropython_env())
    with Broker(tmp_path) as broker:
        cmd, env = run_sim.firmware_command(["--hours", "3", "--mqtt",
                                             "127.0.0.1:%d" % broker.port], heap,
                                            log=lambda msg: None)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MemoryError" not in proc.stderr and "board reset" not in proc.stderr
    # MQTT really ran: telemetry.setup logs a failed start (even a MemoryError) as
    # "mqtt: not started" and leaves the firmware running without it.
    assert "mqtt: connected" in proc.stderr and "not started" not in proc.stderr, \
        proc.stderr[-3000:]
    used = [int(b) for _, b in HOUR_RE.findall(proc.stderr)]
    assert len(used) == 2 and abs(used[1] - used[0]) <= 512, used


def test_make_sim_publishes_to_the_broker_it_is_given(tmp_path):
    # `make sim MQTT=host:port`: the simulated day's telemetry reaches a subscriber.
    import sys
    with Broker(tmp_path) as broker:
        sub = Client(broker.port, "watcher")
        sub.subscribe("panelcap/state")
        proc = subprocess.run([sys.executable, str(ROOT / "tools/run_sim.py"), "--hours", "0.1",
                               "--speed", "0", "--mqtt", "127.0.0.1:%d" % broker.port,
                               "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        time.sleep(1)
        states = sub.take()
        sub.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "mqtt: connected" in proc.stdout
    assert len(states) >= 30, len(states)        # one per 10 simulated s over 6 min
