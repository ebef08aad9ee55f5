"""The mains meter's dialect seam and the meter *instead of* the CTs (issue 15 item 2):
mains_p1.py (DSMR-reader's dsmr/json telegram) and mains_profile.py on the 32-bit port
(good, malformed and implausible readings: a one-line refusal); tools/p1_sim.py through
mosquitto to the firmware with mains_source meter, dialect p1: its readings are the panel's
power, under the stricter limit, and a silent meter is the fail-safe (every load shed)."""
import json
import os
import sys
import time

from conftest import ROOT, run_mpy
from mqtt_helpers import Broker
from mains_rig import MainsFirmware

sys.path.insert(0, os.path.join(str(ROOT), "tools"))
from p1_sim import P1Sim, telegram  # noqa: E402

# A dialect's parse(), its one-line refusal as a value (test_mains_dialects.py too).
PARSE_OR_REFUSAL = """
def p(mod, topic, payload):
    try:
        return mod.parse(topic, payload)
    except ValueError as e:
        return "ValueError: " + str(e)
"""
PARSE = """
import json
import mains_p1, mains_profile
""" + PARSE_OR_REFUSAL + """
for label, mod, topic, payload in json.loads(CASES):
    print(json.dumps([label, p(mains_p1 if mod == "p1" else mains_profile, topic, payload)]))
print(json.dumps(["legs", mains_p1.legs(LEGS)]))
print(json.dumps(["topics", [mains_p1.topics("dsmr/json"), mains_profile.topics("m1")]]))
"""

D = "electricity_currently_delivered"
R = "electricity_currently_returned"
CASES = [
    ("p1 import", "p1", "dsmr/json", telegram(1, 2345), 2345),
    ("p1 export", "p1", "dsmr/json", telegram(2, -1800), -1800),
    ("p1 kw round", "p1", "dsmr/json", json.dumps({D: 0.0005, R: 0}), 1),
    ("p1 no power", "p1", "dsmr/json", json.dumps({"id": 3, "timestamp": "x"}), None),
    ("p1 not json", "p1", "dsmr/json", "{electricity", "ValueError: telegram is not JSON"),
    ("p1 list", "p1", "dsmr/json", "[1, 2]", "ValueError: telegram is not a JSON object"),
    ("p1 half", "p1", "dsmr/json", json.dumps({D: 1.0}),
     "ValueError: electricity_currently_returned is not a kW figure >= 0"),
    ("p1 negative", "p1", "dsmr/json", json.dumps({D: -1.0, R: 0}),
     "ValueError: electricity_currently_delivered is not a kW figure >= 0"),
    ("p1 string", "p1", "dsmr/json", json.dumps({D: "1.2", R: 0}),
     "ValueError: electricity_currently_delivered is not a kW figure >= 0"),
    ("p1 bool", "p1", "dsmr/json", json.dumps({D: True, R: 0}),
     "ValueError: electricity_currently_delivered is not a kW figure >= 0"),
    ("p1 huge", "p1", "dsmr/json", json.dumps({D: 600.0, R: 0}),
     "ValueError: electricity_currently_delivered - returned out of range"),
    ("profile good", "profile", "pcp/m1/reading", json.dumps({"seq": 5, "valid": True, "w": 700}),
     700),
    ("profile back", "profile", "pcp/m1/reading", json.dumps({"seq": 4, "valid": True, "w": 7}),
     "ValueError: seq went back: 4 after 5"),
    ("profile restart", "profile", "pcp/m1/reading", json.dumps({"seq": 1, "valid": True, "w": 7}),
     7),
    ("profile invalid", "profile", "pcp/m1/reading", json.dumps({"seq": 2, "valid": False, "w": 7}),
     "ValueError: reading not valid"),
    ("profile float", "profile", "pcp/m1/reading", json.dumps({"seq": 3, "valid": True, "w": 7.5}),
     "ValueError: w is not an int"),
    ("profile junk", "profile", "pcp/m1/reading", "nope", "ValueError: reading is not JSON"),
]


def test_dialect_parsers_on_the_32_bit_port():
    code = PARSE.replace("CASES", repr(json.dumps([c[:4] for c in CASES]))).replace(
        "LEGS", repr(telegram(9, 1000, (1500, -500))))
    out = dict(json.loads(l) for l in run_mpy(code).stdout.splitlines() if l.startswith("["))
    for label, _, _, _, want in CASES:
        got = out[label]
        if isinstance(want, str):
            assert isinstance(got, str) and got.startswith(want), (label, got)
            assert "\n" not in got, got                         # one line
        else:
            assert got == want, (label, got)
    assert out["legs"] == [1500, -500]
    assert out["topics"] == [["dsmr/json"], ["pcp/m1/reading"]]



def _p1_as_source(tmp_path, seconds, offset_w=0, silent_at_ms=None):
    """The firmware with a 1-s P1 meter as the panel's source, the meter fed the simulated
    panel's power plus offset_w until silent_at_ms: (samples, log, loaded)."""
    with Broker(tmp_path) as broker:
        sim = P1Sim("127.0.0.1", broker.port, "dsmr/json", 1)
        fw = MainsFirmware(broker.port, seconds, {"mains_meter": "dsmr/json",
                                                  "mains_meter_dialect": "p1",
                                                  "mains_meter_s": 1, "mains_source": "meter"})
        sim.start()
        while fw.running(seconds + 40):
            last = fw.last()
            if last is not None:
                sim.set_reading(last["truth_w"] + offset_w)
                if silent_at_ms is not None and last["t"] >= silent_at_ms:
                    sim.silent()
            time.sleep(0.2)
        out = fw.finish()
        sim.close()
    return out


def test_p1_meter_as_the_source_fails_safe_when_silent(tmp_path):
    # The P1 simulator reports the simulated panel's power once a second (DSMR 5) for 20 s,
    # then falls silent: after 3 intervals the measurement is stale, every load shed.
    samples, log, loaded = _p1_as_source(tmp_path, 32, silent_at_ms=20000)
    assert loaded[0] == [] and "mains_p1" in loaded[-1] and "mains_shelly" not in loaded[-1]
    assert "mains: the meter is the panel's source, limit 1 % lower" in log, log
    assert not [line for line in log if line.startswith("report:")], log   # state went out
    fed = [r for r in samples if 8000 <= r["t"] < 20000]
    assert fed and all(r["state"] != "failsafe" for r in fed), (fed, log)
    assert all(r["limit_w"] == 19200 * 99 // 100 for r in fed), fed[-1]
    assert any(r["wh"] for r in fed), log                     # loads ran on the meter's word
    # Silent from 20 s: stale after 3 s (plus a control period), then shed and held.
    late = [r for r in samples if r["t"] >= 20000 + 3000 + 2500]
    assert late and all(r["state"] == "failsafe" and not r["wh"] for r in late), late[:3]


def test_a_meter_that_is_the_source_is_still_cross_checked_by_the_cts(tmp_path):
    # The P1 meter is the panel's source and reads 4 kW more than the panel draws: the CTs
    # still see the truth, so three readings in a row disagree, the check's limit goes to
    # 0 W and every controllable load is shed. (It compared the meter with itself before.)
    samples, log, _ = _p1_as_source(tmp_path, 16, offset_w=4000)
    assert any(line.startswith("alarm: mains meter disagrees") for line in log), log
    late = [r for r in samples if r["t"] >= 12000]
    assert late and all(r["fault"] and r["limit_w"] == 0 and not r["wh"] for r in late), late[:3]


LEGS = """
import json
import mainsource
class Clock:
    t = 100000
    def ticks_ms(self): return self.t
    def ticks_diff(self, a, b): return a - b
class Check:
    meter_w = None; meter_legs = None; meter_ms = 0; timeout_ms = 30000
class Sampler:
    meter = "ct-meter"
clk = Clock(); chk = Check()
m = mainsource.MeterMeasurement(chk, clk, 2, 240)
out = {"none": m.refresh(Sampler()).valid}
chk.meter_w = 4800; chk.meter_ms = clk.t - 1000
r = m.refresh(Sampler()); out["whole"] = [r.valid, r.total_w, list(r.leg_ma)]
chk.meter_legs = (3600, 1200)
r = m.refresh(Sampler()); out["legs"] = [r.total_w, list(r.leg_ma)]
chk.meter_legs = (-600, 1200); chk.meter_w = 600
r = m.refresh(Sampler()); out["export leg"] = list(r.leg_ma)
clk.t += 30001
out["stale"] = m.refresh(Sampler()).valid
out["margin"] = [mainsource.margin_pct(1), mainsource.margin_pct(10), mainsource.margin_pct(60)]
print(json.dumps(out))
"""


def test_meter_measurement_legs_and_staleness():
    # Per leg from the dialect when it has legs, else the whole reading on every leg (toward
    # shedding); stale after 3 intervals; the margin 1 % a second of interval, at most 20.
    out = json.loads(run_mpy(LEGS).stdout.splitlines()[-1])
    assert out["none"] is False
    assert out["whole"] == [True, 4800, [20000, 20000]]
    assert out["legs"] == [4800, [15000, 5000]]
    assert out["export leg"] == [0, 5000]
    assert out["stale"] is False
    assert out["margin"] == [1, 10, 20]


CONFIG = """
import json
import config
import simboard as board
def errs(**kw):
    cfg = config.defaults(board)
    cfg['mqtt_host'] = '127.0.0.1'
    cfg.update(kw)
    return [e for e in config.validate(cfg, board) if 'mains' in e]
print(json.dumps({
    "defaults": [config.defaults(board)["mains_meter_dialect"], config.defaults(board)["mains_source"]],
    "p1": errs(mains_meter="dsmr/json", mains_meter_dialect="p1", mains_source="meter"),
    "profile slash": errs(mains_meter="a/b"),
    "source alone": errs(mains_source="meter"),
    "p1 wildcard": errs(mains_meter="dsmr/#", mains_meter_dialect="p1"),
}))
"""


def test_config_of_the_mains_meter_as_source():
    out = json.loads(run_mpy(CONFIG, heap="512k").stdout.splitlines()[-1])
    assert out["defaults"] == ["profile", "ct"]
    assert out["p1"] == []                                     # a topic with / is fine for p1
    assert len(out["profile slash"]) == 1 and "no /" in out["profile slash"][0]
    assert out["source alone"] == ["mains_source meter needs mains_meter"]
    assert len(out["p1 wildcard"]) == 1


def test_status_and_the_snapshot_show_the_mains_meter(tmp_path):
    # A mains meter is one of the control loop's sources, and every source is read by the
    # console's status() and the status snapshot (MQTT's state, /api/status). Without
    # source and report() on the check, both raised AttributeError whenever a meter was
    # configured, so such a site published no state at all (found by heapfit devices).
    from test_console import run
    reading = telegram(1, 2300)
    out = run(tmp_path, """
import json, mainscheck, mains_p1, snapshot
from clock import Clock
chk = mainscheck.MainsCheck(a.limits, Clock(), mains_p1, "dsmr/json", 10000, 500)
a.control.sources.append(chk)
a.mains_check = chk
status()
chk.on_reading(%r, "dsmr/json")
chk.on_reading("not json", "dsmr/json")
status()
print("SNAP", json.dumps(snapshot.status(a, 0)["mains_meter"]))
""" % reading)
    lines = [line for line in out if line.startswith("mains meter")]
    assert lines == ["mains meter no reading yet, 0 readings (0 refused): no cross-check",
                     "mains meter 2300 W, 1 readings (1 refused): agrees with the CTs"], out
    snap = json.loads([line for line in out if line.startswith("SNAP ")][0][5:])
    assert snap == {"meter_w": 2300, "fault": False, "silent": False, "readings": 1,
                    "bad_readings": 1, "disagreements": 0}, snap
