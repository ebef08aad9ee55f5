"""The mains meter's dialects (firmware/mains_shelly.py, mains_tasmota.py, their bound in
meterwatts.py) under micropython on the 32-bit port: the topics each subscribes to, the
vendor's own payloads (Shelly's em:0 / em1:N status, Tasmota's tele SENSOR) turned into
whole W with import positive, None for what is not a reading, and a one-line ValueError for
every implausible one."""
import json
import time

import pytest

from conftest import ROOT, run_mpy
from mqtt_helpers import Broker
from mains_rig import MainsFirmware
from test_mains_meter import PARSE_OR_REFUSAL

# Shelly's documented status of a Pro 3EM's em:0 (EM.GetStatus; the same object is
# published on <prefix>/status/em:0): phase b exports.
EM0 = {"id": 0, "a_current": 4.029, "a_voltage": 236.1, "a_act_power": 951.2,
       "a_aprt_power": 951.9, "a_pf": 1, "a_freq": 50, "b_current": 4.027,
       "b_voltage": 236.201, "b_act_power": -951.1, "b_aprt_power": 951.8, "b_pf": 1,
       "b_freq": 50, "c_current": 3.03, "c_voltage": 236.402, "c_act_power": 715.4,
       "c_aprt_power": 716.2, "c_pf": 1, "c_freq": 50, "n_current": 11.029,
       "total_current": 11.083, "total_act_power": 715.5, "total_aprt_power": 2619.9,
       "user_calibrated_phase": []}
# A Pro EM's em1:1 (EM1.GetStatus).
EM1 = {"id": 1, "current": 22.78, "voltage": 224.6, "act_power": 5080.3,
       "aprt_power": 5142.4, "pf": 0.99, "freq": 50.0, "calibration": "factory"}
# Tasmota's tele/<topic>/SENSOR of an energy monitor, and of a 3-phase meter (SDM630).
SENSOR1 = {"Time": "2026-12-05T00:10:00", "ENERGY": {
    "TotalStartTime": "2026-01-01T00:00:00", "Total": 123.456, "Yesterday": 7.1,
    "Today": 3.2, "Period": 12, "Power": 2400, "ApparentPower": 2410,
    "ReactivePower": 200, "Factor": 0.99, "Voltage": 239, "Current": 10.05}}
SENSOR3 = {"Time": "2026-12-05T00:10:00", "ENERGY": {
    "Total": 9.1, "Power": [1200.4, -300.2, 800], "Voltage": [231, 230, 232],
    "Current": [5.2, 1.3, 3.5]}}

IMPORTS = """
import json, sys
import mains_shelly, mains_tasmota
"""
CODE = PARSE_OR_REFUSAL + """
def show(label, v):
    print(json.dumps([label, v]))
show("mods", sorted(m for m in sys.modules if m.startswith(("mains", "meter", "adapt", "net",
                                                            "app", "mainscheck"))))
show("shelly topics", [mains_shelly.topics("shellypro3em-aa"),
                       mains_shelly.topics("shellyproem50-bb/em1:1"),
                       mains_shelly.topics("site/meter")])
show("tasmota topics", mains_tasmota.topics("mains"))
for label, mod, topic, payload in CASES:
    show(label, p(mod, topic, payload))
"""

CASES = [
    # label, module, topic, payload, expected (an int, None, or "ValueError" + its start)
    ("3em", "shelly", b"shellypro3em-aa/status/em:0", EM0, 716),
    ("3em str topic", "shelly", "shellypro3em-aa/status/em:0", EM0, 716),
    ("3em export", "shelly", b"s/status/em:0", dict(EM0, total_act_power=-715.5), -716),
    ("3em small", "shelly", b"s/status/em:0", dict(EM0, total_act_power=0.4), 0),
    ("3em int", "shelly", b"s/status/em:0", dict(EM0, total_act_power=499999), 499999),
    ("em1", "shelly", b"shellyproem50-bb/status/em1:1", EM1, 5080),
    ("switch", "shelly", b"s/status/switch:0", {"id": 0, "output": True, "apower": 9.0}, None),
    ("emdata", "shelly", b"s/status/emdata:0", {"id": 0, "total_act": 1.0}, None),
    ("online", "shelly", b"s/online", "true", None),
    ("3em errors", "shelly", b"s/status/em:0", dict(EM0, errors=["power_meter_failure"]),
     "ValueError: shelly em:0: meter reports errors"),
    ("3em phase errors", "shelly", b"s/status/em:0", dict(EM0, c_errors=["out_of_range:current"]),
     "ValueError: shelly em:0: meter reports c_errors"),
    ("em1 errors", "shelly", b"s/status/em1:0", dict(EM1, errors=["out_of_range:act_power"]),
     "ValueError: shelly em1:0: meter reports errors"),
    ("3em missing", "shelly", b"s/status/em:0", {"id": 0, "a_act_power": 3.0},
     "ValueError: shelly em:0: no total_act_power"),
    ("3em string", "shelly", b"s/status/em:0", dict(EM0, total_act_power="715"),
     "ValueError: shelly em:0 total_act_power is not a number"),
    ("3em bool", "shelly", b"s/status/em:0", dict(EM0, total_act_power=True),
     "ValueError: shelly em:0 total_act_power is not a number"),
    ("3em null", "shelly", b"s/status/em:0", dict(EM0, total_act_power=None),
     "ValueError: shelly em:0 total_act_power is not a number"),
    ("3em huge", "shelly", b"s/status/em:0", dict(EM0, total_act_power=500001),
     "ValueError: shelly em:0 total_act_power out of range"),
    ("3em huge export", "shelly", b"s/status/em:0", dict(EM0, total_act_power=-2e9),
     "ValueError: shelly em:0 total_act_power out of range"),
    ("3em not json", "shelly", b"s/status/em:0", b"\xff{", "ValueError: shelly em:0: not JSON"),
    ("3em list", "shelly", b"s/status/em:0", [1, 2], "ValueError: shelly em:0: not a status"),
    ("tasmota", "tasmota", b"tele/mains/SENSOR", SENSOR1, 2400),
    ("tasmota str topic", "tasmota", "tele/mains/SENSOR", SENSOR1, 2400),
    ("tasmota 3 phases", "tasmota", b"tele/mains/SENSOR", SENSOR3, 1700),
    ("tasmota tenths", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Power": [0.4, 0.4, 0.4]}}, 1),
    ("tasmota export", "tasmota", b"tele/mains/SENSOR",
     {"ENERGY": {"Power": -3200.6}}, -3201),
    ("tasmota other sensor", "tasmota", b"tele/mains/SENSOR",
     {"Time": "x", "DS18B20": {"Temperature": 21.5}}, None),
    ("tasmota state", "tasmota", b"tele/mains/STATE", {"POWER": "ON"}, None),
    ("tasmota lwt", "tasmota", b"tele/mains/LWT", "Online", None),
    ("tasmota no power", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Total": 1.0}},
     "ValueError: tasmota SENSOR: ENERGY without Power"),
    ("tasmota string", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Power": "2400"}},
     "ValueError: tasmota ENERGY.Power is not a number"),
    ("tasmota empty list", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Power": []}},
     "ValueError: tasmota SENSOR: ENERGY.Power is an empty list"),
    ("tasmota bad phase", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Power": [1, None, 2]}},
     "ValueError: tasmota ENERGY.Power phase is not a number"),
    ("tasmota huge", "tasmota", b"tele/mains/SENSOR", {"ENERGY": {"Power": 9e9}},
     "ValueError: tasmota ENERGY.Power out of range"),
    ("tasmota phases huge", "tasmota", b"tele/mains/SENSOR",
     {"ENERGY": {"Power": [400000, 400000, 1]}},
     "ValueError: tasmota ENERGY.Power out of range"),
    ("tasmota not json", "tasmota", b"tele/mains/SENSOR", b"ENERGY",
     "ValueError: tasmota SENSOR: not JSON"),
]


def _run():
    cases = []
    for label, mod, topic, payload, _ in CASES:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        cases.append("(%r, mains_%s, %r, %r)" % (label, mod, topic, payload))
    code = IMPORTS + "CASES = [" + ",\n".join(cases) + "]\n" + CODE
    out = run_mpy(code).stdout.splitlines()
    return dict(json.loads(line) for line in out)


def test_dialects_turn_the_vendors_payloads_into_whole_watts():
    got = _run()
    # Importing a dialect brings its bound and nothing of the firmware's network or app.
    assert got["mods"] == ["mains_shelly", "mains_tasmota", "meterwatts"], got["mods"]
    assert got["shelly topics"] == [["shellypro3em-aa/status/em:0"],
                                    ["shellyproem50-bb/status/em1:1"],
                                    ["site/meter/status/em:0"]]
    assert got["tasmota topics"] == ["tele/mains/SENSOR"]
    for label, _, _, _, want in CASES:
        v = got[label]
        if isinstance(want, str):
            assert isinstance(v, str) and v.startswith(want), (label, v)
            assert "\n" not in v and len(v) < 120, (label, v)       # one line
        else:
            assert v == want and type(v) is type(want), (label, v, want)


def test_simulated_meters_speak_what_the_dialects_read(tmp_path):
    # tools/shelly_sim.py (a Pro 3EM, a Pro EM) and tools/tasmota_sim.py (1 and 3 phases) as
    # mains meters through mosquitto; what they publish, on the topics the dialects
    # subscribe to, is parsed by the firmware's modules: the W each was set to, export
    # negative; a meter naming errors is refused.
    import sys
    from conftest import ROOT
    from mqtt_helpers import Broker, Client
    sys.path.insert(0, str(ROOT / "tools"))
    from shelly_sim import ShellyEmSim
    from tasmota_sim import TasmotaMeterSim
    with Broker(tmp_path) as broker:
        spy = Client(broker.port, "spy")
        for t in ("pro3em/status/#", "proem/status/#", "tele/#"):
            spy.subscribe(t)
        meters = [ShellyEmSim("127.0.0.1", broker.port, "pro3em", "em", period_s=0.3),
                  ShellyEmSim("127.0.0.1", broker.port, "proem", "em1", period_s=0.3),
                  TasmotaMeterSim("127.0.0.1", broker.port, "m1", tele_period_s=0.3),
                  TasmotaMeterSim("127.0.0.1", broker.port, "m3", tele_period_s=0.3, phases=3)]
        for m in meters:
            m.start(30)
        got = {}
        for w in (4321, -2100):
            for m in meters:
                m.set_power(w)
            time.sleep(1.0)
            got[w] = spy.take()
        meters[0].set_errors(["power_meter_failure"])
        time.sleep(1.0)
        got["errors"] = [m for m in spy.take() if m[0] == "pro3em/status/em:0"]
        for m in meters:
            m.stop.set()
        time.sleep(0.2)
        for m in meters:
            m.close()
        spy.close()
    code = IMPORTS + """
def p(mod, topic, payload):
    try:
        return mod.parse(topic, payload)
    except ValueError as e:
        return "ValueError: " + str(e)
for label, mod, topic, payload in CASES:
    print(json.dumps([label, topic.decode(), p(mod, topic, payload)]))
print(json.dumps(["topics", mains_shelly.topics("pro3em") + mains_shelly.topics("proem/em1:0")
                  + mains_tasmota.topics("m1") + mains_tasmota.topics("m3")]))
"""
    cases = []
    for label, msgs in got.items():
        for topic, payload, _ in msgs:
            mod = "mains_tasmota" if topic.startswith("tele/") else "mains_shelly"
            cases.append("(%r, %s, %r, %r)" % (str(label), mod, topic.encode(), payload))
    out = [json.loads(l) for l in run_mpy("CASES = []\n" + code.replace(
        "for label", "CASES = [" + ",\n".join(cases) + "]\nfor label", 1)).stdout.splitlines()]
    topics = set(out.pop()[1])
    assert topics == {"pro3em/status/em:0", "proem/status/em1:0", "tele/m1/SENSOR",
                      "tele/m3/SENSOR"}
    for w in ("4321", "-2100"):
        readings = {(t, v) for label, t, v in out if label == w and t in topics}
        # Every meter, each reading the W it was set to (the 3 phases' tenths summed back).
        assert {t for t, _ in readings} == topics, readings
        assert {v for _, v in readings} == {int(w)}, readings
    errs = [v for label, t, v in out if label == "errors"]
    assert errs and all(v.startswith("ValueError: shelly em:0: meter reports errors")
                        for v in errs[-1:]), errs



@pytest.mark.parametrize("dialect", ["shelly", "tasmota"])
def test_firmware_cross_checks_a_simulated_meter_beside_the_cts(tmp_path, dialect):
    # The vendor's simulated meter on the mains reports the panel's true power every second;
    # then 3 kW high (the mains_check fault: every load shed), then true again (cleared).
    from shelly_sim import ShellyEmSim
    from tasmota_sim import TasmotaMeterSim
    with Broker(tmp_path) as broker:
        if dialect == "shelly":
            meter = ShellyEmSim("127.0.0.1", broker.port, "pro3em", "em", period_s=1)
        else:
            meter = TasmotaMeterSim("127.0.0.1", broker.port, "mains", tele_period_s=1, phases=3)
        device = "pro3em" if dialect == "shelly" else "mains"
        meter.start(120)
        fw = MainsFirmware(broker.port, 32, {"mains_meter": device, "mains_meter_dialect": dialect,
                                             "mains_meter_s": 1, "mains_tolerance_w": 500})
        while fw.running(80):
            last = fw.last()
            if last is not None:
                off = 3000 if 12000 <= last["t"] < 20000 else 0
                meter.set_power(last["truth_w"] + off)
            time.sleep(0.25)
        samples, log, loaded = fw.finish()
        meter.stop.set()
        time.sleep(0.2)
        meter.close()
    assert [m for m in loaded[-1] if m.startswith("mains_")] == ["mains_" + dialect], loaded
    before = [r for r in samples if 3000 <= r["t"] < 12000]
    assert before and not any(r["fault"] for r in before), log          # they agree
    fault = [r for r in samples if 12000 <= r["t"] < 20000 and r["fault"]]
    assert fault and fault[0]["t"] <= 12000 + 3000 + 1000 + 2000, log
    assert any(r["limit_w"] == 0 for r in fault), fault[:3]
    assert any(l.startswith("alarm: mains meter disagrees") for l in log), log
    after = [r for r in samples if 20000 <= r["t"]]
    assert any(not r["fault"] for r in after) and not after[-1]["fault"], log
    assert after[-1]["limit_w"] != 0
