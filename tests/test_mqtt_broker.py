"""MQTT against a real broker (mosquitto, started here on a loopback port) and against two
bad ones: the firmware runs on the simulated board in real time (tests/mqtt_fw.py) while a
probe task measures the scheduler's worst gap in real milliseconds."""
import json
import time

import pytest

from conftest import MICROPYTHON, ROOT, mpy_env
from mqtt_helpers import Broker, Client, Dropper, JsonLinesProcess, Tarpit

# The scheduler's gaps are real milliseconds (real sockets, a real broker), so they carry the
# host's noise: a loaded 2-core machine can take the CPU from the process for tens of ms.
# What the bounds must catch is a task that waits on the network without yielding: every
# wait the link has is a deadline of 5 s (TCP connect, CONNACK, SUBACK, output drained) or a
# keepalive, so one blocked wait shows as a gap of seconds. GAP_LIMIT_MS is a fifth of the
# shortest of them; and a stall on every pass would make many wakes late, where the host's
# preemptions are rare: at most 1 % of the probe's wakes may come more than LATE_MS late
# (the board's budget, docs/mqtt.md; 4-5 ms is typical here, printed below).
GAP_LIMIT_MS = 1000
LATE_MS = 50


def _gaps_ok(done):
    assert done["worst_ms"] < GAP_LIMIT_MS, done
    assert done["late_ms"] == LATE_MS and done["late"] * 100 <= done["wakes"], done
HEAP = "512k"    # the day test in test_mqtt_day.py covers the heap; these cover behaviour


class Firmware(JsonLinesProcess):
    """tests/mqtt_fw.py under micropython; its per-second JSON lines, collected live."""

    def __init__(self, opts, heap=HEAP):
        self.lines = []
        self.logs = []
        self.done = None
        super().__init__([MICROPYTHON, "-X", "heapsize=" + heap,
                          str(ROOT / "tests" / "mqtt_fw.py"), json.dumps(opts)],
                         ROOT, mpy_env())

    def handle(self, d):
        if "raw" in d:
            return
        if "log" in d:
            self.logs.append(d["log"])
        elif "done" in d:
            self.done = d
        else:
            self.lines.append(d)

    def wait_t(self, t, timeout=60):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.lines and self.lines[-1]["t"] >= t:
                return self.lines[-1]
            if self.exited():
                break
            time.sleep(0.05)
        raise AssertionError("firmware did not reach t=%s; stderr:\n%s" % (t, self.stderr_tail()))

    def finish(self, timeout=60):
        err = super().finish(timeout)
        assert self.done is not None, err[-3000:]
        return self.done


def _control_ok(lines):
    """Nothing in control suffered: a step and a watchdog feed every second, no crash of a
    critical task, no failsafe entry."""
    for prev, cur in zip(lines, lines[1:]):
        assert cur["steps"] > prev["steps"], "control step missed at t=%d" % cur["t"]
        assert cur["feeds"] > prev["feeds"], "watchdog not fed at t=%d" % cur["t"]
    last = lines[-1]
    assert last["crashes"]["sampler"] == 0 and last["crashes"]["control"] == 0, last
    assert last["failsafe"] == 0, last


def test_telemetry_discovery_and_commands(tmp_path):
    with Broker(tmp_path, users={"panel": "s3cret-pw"}) as broker:
        sub = Client(broker.port, "watcher", user="panel", password="s3cret-pw")
        sub.subscribe("#")
        fw = Firmware({"port": broker.port, "seconds": 14, "period_ms": 1000,
                       "mqtt_user": "panel", "mqtt_password": "s3cret-pw", "prefix": "site7/pc",
                       "speed": 2})
        try:
            state = sub.wait_json("site7/pc/state", timeout=30)
            assert state is not None, fw.logs
            for key, typ in (("valid", bool), ("total_w", int), ("leg_ma", list),
                             ("leg_w", list), ("vrms_mv", int), ("setpoint_w", int),
                             ("limit_w", int), ("headroom_w", int), ("control", str),
                             ("faults", int), ("fault_names", list), ("loads", dict),
                             ("remote_limit_s", int)):
                assert isinstance(state[key], typ), (key, state)
            assert state["setpoint_w"] == 9600 and state["limit_w"] == 9600
            assert state["remote_limit_w"] is None
            assert set(state["loads"]) == {"water_heater", "ev"}
            ev = state["loads"]["ev"]
            assert {"on", "power_w", "setpoint_a", "output_a", "override", "override_s"} <= set(ev)
            assert {"on", "power_w", "output_on"} <= set(state["loads"]["water_heater"])
            # (the first one may have been queued while the link was still connecting)
            diag = sub.wait_json("site7/pc/diag", lambda d: d["mqtt"]["state"] == "connected",
                                 timeout=10)
            for key in ("version", "board", "reset_cause", "uptime_s", "free_heap", "windows",
                        "control_steps", "wdt_feeds", "task_crashes", "mqtt", "commands"):
                assert key in diag, (key, diag)
            assert diag["board"] == "sim" and diag["reset_cause"] == "power-on"

            # Retained: a late subscriber gets availability and discovery at once.
            late = Client(broker.port, "late", user="panel", password="s3cret-pw")
            late.subscribe("site7/pc/status")
            late.subscribe("homeassistant/#")
            m = late.wait_for(lambda m: m[0] == "site7/pc/status", timeout=5)
            assert m is not None and m[1] == b"online" and m[2], m
            time.sleep(0.5)
            configs = [m for m in late.take() if m[0].startswith("homeassistant/")]
            _check_discovery(configs)

            # Commands: each acts; each malformed one is refused with an error event.
            sub.take()
            sub.publish("site7/pc/cmd/limit", '{"limit_w": 6000, "duration_s": 600, "id": 1}')
            ok = sub.wait_json("site7/pc/event", lambda d: d.get("id") == 1, timeout=10)
            assert ok and ok["ok"] is True and ok["limit_w"] == 6000, ok
            st = sub.wait_json("site7/pc/state", lambda d: d["remote_limit_w"] == 6000, 10)
            assert st and st["limit_w"] == 6000 and 590 <= st["remote_limit_s"] <= 600, st
            for bad in ('{"limit_w": 12000, "duration_s": 600, "id": 2}',
                        '{"limit_w": "6000", "duration_s": 600, "id": 2}',
                        '{"limit_w": 5000, "id": 2}', '{"limit_w": 5000, "duration_s": 0, "id": 2}',
                        'not json', '{"limit_w": 5000, "duration_s": 60, "x": 1, "id": 2}',
                        '{"limit_w": 5000, "duration_s": 60, "\u00fc\u20ac": 1, "id": 2}',
                        b'{"limit_w": 5000, "duration_s": 60, "\xff": 1}'):
                sub.publish("site7/pc/cmd/limit", bad)
                err = sub.wait_json("site7/pc/event", lambda d: d["ok"] is False, timeout=10)
                assert err and err["error"], (bad, err)
            st = sub.wait_json("site7/pc/state", timeout=10)
            assert st["limit_w"] == 6000 and st["remote_limit_w"] == 6000, st
            sub.publish("site7/pc/cmd/load/ev", '{"mode": "max_a", "max_a": 8, "duration_s": 300}')
            ok = sub.wait_json("site7/pc/event", lambda d: d.get("load") == "ev", timeout=10)
            assert ok and ok["ok"], ok
            st = sub.wait_json("site7/pc/state",
                               lambda d: d["loads"]["ev"]["override"] == "max_a 8", 10)
            assert st and st["loads"]["ev"]["output_a"] <= 8, st
            sub.publish("site7/pc/cmd/load/ev", '{"mode": "max_a", "max_a": 99, "duration_s": 5}')
            err = sub.wait_json("site7/pc/event", lambda d: d["ok"] is False, timeout=10)
            assert err and "max_a" in err["error"], err
            sub.publish("site7/pc/cmd/load/heat_pump", '{"mode": "off", "duration_s": 5}')
            err = sub.wait_json("site7/pc/event", lambda d: d["ok"] is False, timeout=10)
            assert err and "unknown command" in err["error"], err
            sub.take()
            sub.publish("site7/pc/cmd/status", "")
            ok = sub.wait_json("site7/pc/event", lambda d: d["cmd"] == "status", timeout=10)
            assert ok and ok["ok"], ok
            sub.publish("site7/pc/cmd/limit", '{"limit_w": null}')
            st = sub.wait_json("site7/pc/state", lambda d: d["remote_limit_w"] is None, 10)
            assert st and st["limit_w"] == 9600, st
            done = fw.finish()
        finally:
            fw.kill()
        everything = b" ".join(m[1] for m in sub.take()) + " ".join(fw.logs).encode()
        assert b"s3cret-pw" not in everything     # no secret is ever published or printed
        _gaps_ok(done)
        _control_ok(fw.lines)
        late.close()
        sub.close()


def _check_discovery(configs):
    """Home Assistant MQTT discovery: valid JSON; the fields it requires (state_topic for
    sensors and binary sensors; unique_id and a device with identifiers so entities group
    and can be edited); units where a device class needs them."""
    topics = {m[0] for m in configs}
    for t in ("homeassistant/sensor/site7_pc/power/config",
              "homeassistant/sensor/site7_pc/current_l1/config",
              "homeassistant/sensor/site7_pc/current_l2/config",
              "homeassistant/sensor/site7_pc/headroom/config",
              "homeassistant/binary_sensor/site7_pc/ev/config",
              "homeassistant/binary_sensor/site7_pc/water_heater/config"):
        assert t in topics, (t, sorted(topics))
    units = {"power": "W", "current": "A", "voltage": "V", "duration": "s", "data_size": "B"}
    ids = set()
    for topic, payload, retain in configs:
        assert retain, topic
        cfg = json.loads(payload)
        assert cfg["state_topic"] in ("site7/pc/state", "site7/pc/diag"), cfg
        assert cfg["availability_topic"] == "site7/pc/status"
        assert cfg["unique_id"] not in ids
        ids.add(cfg["unique_id"])
        assert cfg["device"]["identifiers"] == ["site7_pc"]
        assert cfg["name"] and cfg["value_template"].startswith("{{")
        dc = cfg.get("device_class")
        if "/sensor/" in topic and dc in units:
            assert cfg["unit_of_measurement"] == units[dc], cfg
        if "/binary_sensor/" in topic:
            assert "'ON'" in cfg["value_template"] and "unit_of_measurement" not in cfg


def test_broker_restart_reconnects_and_control_carries_on(tmp_path):
    broker = Broker(tmp_path).start()
    fw = Firmware({"port": broker.port, "seconds": 24, "period_ms": 1000, "speed": 2})
    try:
        sub = Client(broker.port, "w1")
        sub.subscribe("panelcap/#")
        assert sub.wait_json("panelcap/state", timeout=30) is not None
        t_stop = fw.wait_t(4)["t"]
        broker.stop()
        fw.wait_t(t_stop + 2)
        broker.start()
        sub = Client(broker.port, "w2")
        sub.subscribe("panelcap/#")
        st = sub.wait_json("panelcap/state", timeout=40)
        assert st is not None, fw.logs
        m = sub.wait_for(lambda m: m[0] == "panelcap/status", timeout=1)
        done = fw.finish()
    finally:
        fw.kill()
        broker.stop()
    lines = fw.lines
    assert lines[-1]["connects"] >= 2, lines[-1]
    assert any(l["mqtt"] != "connected" for l in lines if l["t"] > t_stop), "outage seen"
    assert lines[-1]["mqtt"] == "connected"
    assert len({l["limit_w"] for l in lines}) == 1
    _gaps_ok(done)
    _control_ok(lines)
    print("broker restart: worst gap %d ms, connects %d" % (done["worst_ms"],
                                                           lines[-1]["connects"]))


@pytest.mark.parametrize("kind", ["tarpit", "dropper"])
def test_bad_broker_never_stalls_and_overload_is_shed(kind):
    server = Tarpit() if kind == "tarpit" else Dropper(cut_after=40)
    with server:
        # The household steps from 1.5 kW to 8 kW at t=22 s, with the water heater and the
        # EV running (they came back after the start-up stagger): the controller must shed.
        fw = Firmware({"port": server.port, "seconds": 34, "period_ms": 1000, "speed": 2,
                       "base_w": 1500, "step_w": 8000, "step_at_s": 22, "limit_w": 9600})
        try:
            done = fw.finish(timeout=90)
        finally:
            fw.kill()
    lines = fw.lines
    assert server.accepted >= 2, "the firmware retries the broker"
    if kind == "dropper":
        assert server.cuts >= 1
    assert all(l["mqtt"] != "connected" or kind == "dropper" for l in lines)
    before = [l for l in lines if 17 <= l["t"] <= 22]
    assert before and before[-1]["panel_w"] > 1500 + 4000, "loads were on before the step"
    # Shed in time: within a few control periods (plus the EV's response delay) of the step.
    after = [l for l in lines if l["t"] >= 22 + 8]
    assert after and all(l["panel_w"] <= 9600 for l in after), [
        (l["t"], l["panel_w"], l["wh_on"], l["ev_a"]) for l in lines[18:]]
    _gaps_ok(done)
    _control_ok(lines)
    print("%s: worst gap %d ms, %d connection attempts" % (kind, done["worst_ms"],
                                                          server.accepted))
