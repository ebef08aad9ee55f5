"""The open profile's conformance suite (tools/conformance.py, docs/profile.md) against
panelcap itself (the firmware on the 32-bit unix port, tests/mqtt_fw.py, on mosquitto) and
against the reference device (tools/refdevice.py): clean, it passes; with each defect
seeded, the check for it fails and the suite exits 1. Plus panelcap's actuator in the
firmware's own terms: a limit it is given is in force, none can raise it past the
installer's setpoint, and a silent controller's limit is dropped."""
import json
import subprocess
import sys
import time

import pytest

from conftest import MPY_CROSS, ROOT
from mqtt_helpers import Broker, Client
from test_mqtt_broker import Firmware

CONFORMANCE = [sys.executable, str(ROOT / "tools" / "conformance.py")]
REFDEVICE = [sys.executable, str(ROOT / "tools" / "refdevice.py")]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("mosq")) as b:
        yield b


def conformance(broker, role, dev_id, tmp_path):
    out = tmp_path / ("%s-%s.json" % (role, dev_id))
    r = subprocess.run(CONFORMANCE + ["--broker", "127.0.0.1:%d" % broker.port, "--role", role,
                                      "--id", dev_id, "--json", str(out)],
                       capture_output=True, text=True, timeout=60)
    res = json.loads(out.read_text())
    return r, res


def check_shape(r, res):
    assert set(res) == {"passed", "profile", "checks"}
    assert res["profile"] == "panelcap-profile/0.1"
    for c in res["checks"]:
        assert set(c) == {"name", "ok", "detail"}
        line = "%s %s: %s" % ("PASS" if c["ok"] else "FAIL", c["name"], c["detail"])
        assert line in r.stdout.splitlines()
    assert r.returncode == (0 if res["passed"] else 1)


def test_panelcap_passes_as_sensor_and_actuator(broker, tmp_path):
    fw = Firmware({"port": broker.port, "seconds": 40, "period_ms": 1000, "limit_w": 9600,
                   "profile_device": "on",
                   "prefix": "site7/pc"})
    watch = Client(broker.port, "watch")
    try:
        watch.subscribe("pcp/#")
        fw.wait_t(2)
        assert "profile: sensor site7_pc_mains actuator site7_pc_limit" in fw.logs
        r, res = conformance(broker, "sensor", "site7_pc_mains", tmp_path)
        check_shape(r, res)
        assert res["passed"], r.stdout
        assert [c["name"] for c in res["checks"]] == ["announcement", "readings"]
        r, res = conformance(broker, "actuator", "site7_pc_limit", tmp_path)
        check_shape(r, res)
        assert res["passed"], r.stdout
        assert [c["name"] for c in res["checks"]] == [
            "announcement", "heartbeats", "commands", "malformed", "safe_state"]
        # The firmware's own view: the limit the suite set was in force in the controller,
        # and the silence dropped it (9600 again).
        fw.wait_t(fw.lines[-1]["t"] + 2)      # the control step after the safe state
        limits = [ln["limit_w"] for ln in fw.lines]
        assert 4800 in limits, limits
        assert limits[-1] == 9600, limits
        # Refused commands named their reason in one line; the remote limit never rose.
        acks = [json.loads(m[1]) for m in watch.take() if m[0] == "pcp/site7_pc_limit/ack"]
        refused = [a for a in acks if not a["ok"]]
        assert len(refused) == 5 and all("\n" not in a["error"] for a in refused), acks
        assert any("setpoint must be an int in 0..9600 W, got 9601" == a["error"]
                   for a in refused), refused
    finally:
        watch.close()
        fw.kill()


def test_panelcap_never_raises_the_limit_and_holds_it_while_the_controller_beats(broker):
    fw = Firmware({"port": broker.port, "seconds": 30, "period_ms": 1000, "limit_w": 6000,
                   "profile_device": "on"})
    c = Client(broker.port, "ctl")
    try:
        c.subscribe("pcp/#")
        fw.wait_t(2)
        ann = c.wait_json("pcp/panelcap_limit/announce", timeout=10)
        assert ann is not None, (fw.logs, c.take()[:5])
        assert ann["max"] == 6000 and ann["safe_state"] == {"setpoint": 6000}
        assert ann["max_wait_s"] == 5
        c.publish("pcp/panelcap_limit/set", json.dumps({"id": 7, "setpoint": 7000}))
        a = c.wait_json("pcp/panelcap_limit/ack", lambda d: d["id"] == 7)
        assert a == {"id": 7, "ok": False,
                     "error": "setpoint must be an int in 0..6000 W, got 7000"}
        c.publish("pcp/panelcap_limit/set", json.dumps({"id": "a", "setpoint": 3000}))
        assert c.wait_json("pcp/panelcap_limit/ack", lambda d: d["id"] == "a")["ok"]
        t0 = time.monotonic()
        for _ in range(7):            # 7 s of heartbeats, longer than max_wait_s
            c.publish("pcp/panelcap_limit/alive", b"{}")
            time.sleep(1)
        t = fw.lines[-1]["t"]
        beats = [json.loads(m[1]) for m in c.take() if m[0] == "pcp/panelcap_limit/state"]
        assert beats[-5:] and all(d["setpoint"] == 3000 and not d["safe"] for d in beats[-5:])
        assert all(ln["limit_w"] == 3000 for ln in fw.lines[-6:]), fw.lines[-6:]
        st = c.wait_json("pcp/panelcap_limit/state",
                         lambda d: d["safe"] and d["setpoint"] == 6000, timeout=10)
        assert st is not None and time.monotonic() - t0 >= 6 + 5
        fw.wait_t(t + 8)
        assert fw.lines[-1]["limit_w"] == 6000
    finally:
        c.close()
        fw.kill()


@pytest.mark.parametrize("role", ["sensor", "actuator"])
def test_reference_device_passes(broker, tmp_path, role):
    dev = subprocess.Popen(REFDEVICE + ["--broker", "127.0.0.1:%d" % broker.port,
                                        "--role", role, "--id", "ref-" + role,
                                        "--seconds", "30", "--response", "0.5"])
    try:
        time.sleep(0.5)
        r, res = conformance(broker, role, "ref-" + role, tmp_path)
        check_shape(r, res)
        assert res["passed"] and r.returncode == 0, r.stdout
    finally:
        dev.terminate()
        dev.wait()


# Each seeded defect: the role it is seeded in, and the checks that must fail (and only those).
DEFECTS = [
    ("bad_announce", "actuator", {"announcement", "heartbeats", "commands", "malformed",
                                  "safe_state"}),
    ("bad_announce", "sensor", {"announcement", "readings"}),
    ("not_retained", "sensor", {"announcement", "readings"}),
    ("stale", "sensor", {"readings"}),
    ("stale", "actuator", {"heartbeats"}),
    ("out_of_range", "sensor", {"readings"}),
    ("slow_ack", "actuator", {"commands", "malformed"}),
    ("no_safe", "actuator", {"safe_state"}),
    ("accept_malformed", "actuator", {"malformed"}),
]


@pytest.mark.parametrize("defect,role,failing", DEFECTS)
def test_each_seeded_defect_is_caught(broker, tmp_path, defect, role, failing):
    dev_id = "bad-%s-%s" % (defect, role)
    dev = subprocess.Popen(REFDEVICE + ["--broker", "127.0.0.1:%d" % broker.port,
                                        "--role", role, "--id", dev_id, "--defect", defect,
                                        "--seconds", "30", "--response", "0.5"])
    try:
        time.sleep(0.5)
        r, res = conformance(broker, role, dev_id, tmp_path)
        check_shape(r, res)
        assert r.returncode == 1 and not res["passed"], r.stdout
        assert {c["name"] for c in res["checks"] if not c["ok"]} == failing, r.stdout
    finally:
        dev.terminate()
        dev.wait()


def test_devprofile_cross_compiles_for_the_esp32(tmp_path):
    src = ROOT / "firmware" / "devprofile.py"
    assert "assert " not in src.read_text()      # mpy-cross -O1 strips asserts
    subprocess.run([MPY_CROSS, "-O1", "-march=xtensawin", "-o", str(tmp_path / "d.mpy"),
                    str(src)], check=True)
