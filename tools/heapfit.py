#!/usr/bin/env python3
"""Bisects the smallest heap the firmware needs for a simulated scenario, on the port that
tools/toolchain.py names (the 32-bit build: the ESP32's object sizes). The firmware runs as
make sim runs it (.mpy, umqtt in place from a ROM image) with N KB on top of the simulator's
own measured footprint; a heap passes when the run ends cleanly, every command sent is
answered as expected, and nothing logs a MemoryError, a failed report or a reset.

    .venv/bin/python tools/heapfit.py plain|mqtt|all|devices [--hours H] [--lo KB] [--hi KB]

plain: a simulated day, no network.
mqtt:  MQTT with commands and a broker outage.
all:   MQTT, grid signals (subscription, a schedule, a reservation, an emergency), the EV
       charger driven over MQTT, and commands.
devices: all's signals and commands with other makers' devices on the broker instead
       (docs/profile.md): the water heater on a Shelly, a pool pump on a Tasmota, the EV on
       an OpenEVSE, a sub-panel, a dryer's own meter, a battery soaking an export limit, a
       PV inverter curtailed, and a P1 meter as the panel's source (the CTs cross-checking
       it), each driven by its simulator in tools/.
Prints `firmware_heap_kb_<scenario>: N` (make bench reads it) and, per hour of the passing
run, the heap in use after collection.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import run_sim  # noqa: E402
from mqttbroker import Broker  # noqa: E402
from mqttclient import Mqtt  # noqa: E402

HOUR_RE = re.compile(r"sim: hour (\d+)/\d+, heap in use (\d+) B")
BAD = ("MemoryError", "report:", "not started", "board reset", "Traceback")

MQTT_LOADS = [{"name": "water_heater", "kind": "onoff", "priority": 2, "leg": "L1L2",
               "rated_w": 4500, "output": 0, "ct": "CT3"},
              {"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2",
               "rated_w": 7680, "driver": "mqtt", "max_a": 32, "ct": "CT4"}]

# Every driver of other makers' devices at once, each with its simulator (tools/) on the
# broker. The simulators report every real second, which --speed 600 makes 600 simulated
# seconds: report_s and mains_meter_s are scaled to match, so every device stays fresh.
# The sub-panel is a profile sensor only (no second panelcap): its state never comes, so
# it is lost and counted at its rating, which costs the same objects less its state's.
DEVICE_REPORT_S = 600
DEVICE_LOADS = [
    {"name": "water_heater", "kind": "onoff", "priority": 2, "leg": "L1L2", "rated_w": 4500,
     "driver": "shelly", "device": "wh_relay", "report_s": DEVICE_REPORT_S, "ct": "CT3"},
    {"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2", "rated_w": 7680,
     "driver": "openevse", "device": "oe", "report_s": DEVICE_REPORT_S, "max_a": 32,
     "ct": "CT4"},
    {"name": "pool", "kind": "onoff", "priority": 3, "leg": "L1", "rated_w": 1500,
     "driver": "tasmota", "device": "pool_relay", "report_s": DEVICE_REPORT_S},
    {"name": "garage", "kind": "modulated", "priority": 4, "leg": "L1L2", "rated_w": 9600,
     "driver": "subpanel", "device": "sub1", "report_s": DEVICE_REPORT_S, "min_a": 13,
     "max_a": 40},
    {"name": "dryer", "kind": "onoff", "priority": 5, "leg": "L1L2", "rated_w": 5000,
     "output": 1, "sensor": "dryer_meter", "report_s": DEVICE_REPORT_S},
    {"name": "battery", "kind": "modulated", "priority": 6, "leg": "L1L2", "rated_w": 4800,
     "driver": "battery", "device": "bat1", "report_s": DEVICE_REPORT_S, "min_a": 2,
     "max_a": 20, "soak": 1}]


def device_commands(broker):
    """The simulators' command lines (tools/), each a real MQTT client of the broker."""
    py, tools = sys.executable, str(ROOT / "tools")
    return [[py, tools + "/shelly_sim.py", "--broker", broker, "--prefix", "wh_relay",
             "--rated-w", "4500", "--period", "1", "--seconds", "3600"],
            [py, tools + "/tasmota_sim.py", "--broker", broker, "--topic", "pool_relay",
             "--rated-w", "1500", "--tele-period", "1", "--seconds", "3600"],
            [py, tools + "/openevse_sim.py", "--broker", broker, "--base", "oe",
             "--period", "1", "--seconds", "3600"],
            [py, tools + "/refdevice.py", "--broker", broker, "--role", "sensor",
             "--id", "sub1_mains", "--interval", "1", "--seconds", "3600"],
            [py, tools + "/refdevice.py", "--broker", broker, "--role", "sensor",
             "--id", "dryer_meter", "--interval", "1", "--seconds", "3600"],
            [py, tools + "/p1_sim.py", "--broker", broker, "--period", "1", "--w", "2000",
             "--seconds", "3600"],
            [py, tools + "/setpoint_sim.py", "--broker", broker, "--kind", "battery",
             "--id", "bat1", "--rated-w", "4800", "--seconds", "3600"],
            [py, tools + "/setpoint_sim.py", "--broker", broker, "--kind", "inverter",
             "--id", "roof", "--rated-w", "5000", "--sun-w", "3000", "--seconds", "3600"]]


# What a homeowner or Home Assistant sends: (topic, payload, expected ok).
COMMANDS = (("cmd/limit", '{"limit_w": 5000, "duration_s": 600, "id": 1}', True),
            ("cmd/load/ev", '{"mode": "max_a", "max_a": 10, "duration_s": 900, "id": 2}', True),
            ("cmd/status", "", True),
            ("cmd/limit", '{"limit_w": "lots"}', False),
            ("cmd/load/water_heater", '{"mode": "off", "duration_s": 600, "id": 3}', True),
            ("cmd/limit", '{"limit_w": null, "id": 4}', True))


def _iso(unix_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def grid_commands():
    """What a utility sends: a schedule starting now, a reservation, an emergency."""
    now = int(time.time())
    schedule = {"programID": "heapfit", "eventName": "day-ahead",
                "intervalPeriod": {"start": _iso(now - 60), "duration": "PT1H"},
                "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT",
                                        "units": "KW"}],
                "intervals": [{"id": i, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT",
                                                      "values": [6.5 - 0.5 * (i % 3)]}]}
                              for i in range(8)]}
    return (("cmd/grid/limits", json.dumps(schedule), True),
            ("cmd/grid/reserve", json.dumps({"duration_s": 1800, "extra_w": 1000}), True),
            ("cmd/grid/emergency", '{"share_pct": 50, "duration_s": 300}', True),
            ("cmd/grid/emergency", '{"share_pct": null}', True))


class Scenario:
    def __init__(self, name, hours, rom=False):
        self.name = name
        self.hours = hours
        self.rom = rom          # the firmware in the board's romfs partition, not in RAM
        self.mqtt = name in ("mqtt", "all", "devices")

    def sim_args(self, port):
        args = ["--hours", str(self.hours)]
        if self.mqtt:
            args += ["--mqtt", "127.0.0.1:%d" % port, "--speed", "600"]
        if self.name == "all":
            args += ["--cfg", "loads=" + json.dumps(MQTT_LOADS),
                     "--cfg", "grid_subscription_w=6000"]
        if self.name == "devices":
            args += ["--cfg", "loads=" + json.dumps(DEVICE_LOADS),
                     "--cfg", "grid_subscription_w=6000",
                     "--cfg", 'mains_meter="dsmr/json"', "--cfg", 'mains_meter_dialect="p1"',
                     "--cfg", "mains_meter_s=%d" % DEVICE_REPORT_S,
                     "--cfg", 'mains_source="meter"',
                     # the P1 simulator reads a constant 2000 W: a tolerance it always
                     # meets keeps the cross-check from shedding everything
                     "--cfg", "mains_tolerance_w=100000",
                     # an export limit, the battery soaking, the PV inverter curtailed
                     "--cfg", "export_limit_w=1500", "--cfg", "pv_rated_w=5000",
                     "--cfg", 'pv_inverter="roof"', "--cfg", "pv_inverter_s=%d" % DEVICE_REPORT_S]
        return args

    def commands(self):
        if self.name == "mqtt":
            return COMMANDS
        if self.name in ("all", "devices"):
            return COMMANDS + grid_commands()
        return ()

    def devices(self, port):
        return device_commands("127.0.0.1:%d" % port) if self.name == "devices" else []


class _Site(Mqtt):
    """The homeowner's and the grid's side: sends the commands, answers reservations."""

    def __init__(self, port):
        self.events = []
        self.answered = set()
        self.acked = set()
        self.lock2 = threading.Lock()
        super().__init__("127.0.0.1", port, "heapfit", keepalive_s=0)

    def deliver(self, topic, payload, retain):
        if topic == "panelcap/event":
            with self.lock2:
                self.events.append(json.loads(payload))
        elif topic == "panelcap/grid/request":
            # The site resends a request until it is answered: answered once, as a grid does
            # (tools/grid_responder.py).
            req = json.loads(payload)
            if req["id"] not in self.answered:
                self.answered.add(req["id"])
                self.publish("panelcap/cmd/grid/answer",
                             json.dumps({"id": req["id"], "status": "granted"}))
        elif topic == "panelcap/grid/reservation":
            note = json.loads(payload)       # each change of a reservation's state, acked once
            key = (note["n"], note["id"])
            if key not in self.acked:
                self.acked.add(key)
                self.publish("panelcap/cmd/grid/ack", json.dumps({"n": note["n"], "id": note["id"]}))
        elif topic == "panelcap/state":
            self.seen_state = True

    seen_state = False


def trial(scenario, kb, workdir):
    """Runs the scenario with kb KB for the firmware; (ok, why, hours [(h, bytes)])."""
    broker = Broker(workdir).start() if scenario.mqtt else None
    site = None
    devices = []
    try:
        port = broker.port if broker else 0
        cmd, env = run_sim.firmware_command(scenario.sim_args(port), heap="auto",
                                            log=lambda msg: None, firmware_kb=kb,
                                            firmware_in_rom=scenario.rom)
        devices = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for c in scenario.devices(port)]
        if broker:
            site = _Site(port)
            for topic in ("panelcap/state", "panelcap/event", "panelcap/grid/request",
                          "panelcap/grid/reservation"):
                site.subscribe(topic)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        err = []
        reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
        reader.start()
        commands = scenario.commands()
        if commands:
            t0 = time.monotonic()
            while (not site.seen_state and proc.poll() is None and time.monotonic() - t0 < 30
                   and not any("not started" in line for line in err)):
                time.sleep(0.05)
            for topic, payload, _ in commands:
                site.publish("panelcap/" + topic, payload)
                time.sleep(0.3)
            if scenario.name == "mqtt":
                broker.stop()           # an outage: the link backs off, then reconnects
                time.sleep(2)
                broker.start()
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        log = "".join(err)
        hours = [(int(h), int(b)) for h, b in HOUR_RE.findall(log)]
        if proc.returncode != 0:
            return False, "exit %d: %s" % (proc.returncode, log.strip()[-300:]), hours
        for bad in BAD:
            if bad in log:
                return False, "logged %r" % bad, hours
        if scenario.mqtt and "mqtt: connected" not in log:
            return False, "MQTT never connected", hours
        if commands:
            with site.lock2:
                # The commands it sent, in order; the grid side's answers and acks apart.
                got = [e.get("ok") for e in site.events
                       if "ok" in e and e.get("cmd") not in ("grid/answer", "grid/ack")]
                side = [e for e in site.events if e.get("cmd") in ("grid/answer", "grid/ack")]
            # A resent notice or request can cross its answer on the wire (at --speed 0 the
            # site's 60 s pass in a few real seconds): "... awaits" refusals are that race.
            bad = [e for e in side if not e.get("ok") and "awaits" not in e.get("error", "")]
            answered = any(e.get("ok") and e.get("cmd") == "grid/answer" for e in side)
            if bad or (scenario.name in ("all", "devices") and not answered):
                return False, "grid answers or acks refused: %s" % side, hours
            want = [ok for _, _, ok in commands]
            if got[:len(want)] != want:
                return False, "commands answered %s, expected %s: %s" % (
                    got, want, [e for e in site.events if not e.get("ok")]), hours
        return True, "", hours
    finally:
        for d in devices:
            d.kill()
            d.wait()
        if site is not None:
            site.close()
        if broker is not None:
            broker.stop()


def bisect(scenario, lo_kb, hi_kb, log=print):
    """Smallest KB in (lo_kb, hi_kb] that passes, and that run's hours; hi_kb must pass."""
    with tempfile.TemporaryDirectory(prefix="heapfit") as workdir:
        ok, why, hours = trial(scenario, hi_kb, workdir)
        if not ok:
            raise SystemExit("error: %s fails even with %d KB: %s" % (scenario.name, hi_kb, why))
        best = hours
        while hi_kb - lo_kb > 1:
            mid = (lo_kb + hi_kb) // 2
            ok, why, hours = trial(scenario, mid, workdir)
            log("  %s at %d KB: %s" % (scenario.name, mid, "ok" if ok else "fails (%s)" % why))
            if ok:
                hi_kb, best = mid, hours
            else:
                lo_kb = mid
        return hi_kb, best


SCENARIOS = ("plain", "mqtt", "all", "devices")


def parse_args(argv, description, rom_help):
    """The command line heapfit.py and webheapfit.py share; hours defaulted and checked."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("scenario", choices=SCENARIOS)
    ap.add_argument("--hours", type=float, default=None,
                    help="simulated hours per trial (default: 24 plain, 2 with MQTT)")
    ap.add_argument("--lo", type=int, default=16, help="KB known to fail")
    ap.add_argument("--hi", type=int, default=192, help="KB known to pass")
    ap.add_argument("--rom", action="store_true", help=rom_help)
    args = ap.parse_args(argv)
    if args.hours is None:
        args.hours = 24 if args.scenario == "plain" else 2
    if args.hours <= 1:
        sys.exit("error: --hours must be above 1: the heap is read once a simulated hour")
    return args


def main(argv=None):
    args = parse_args(argv, __doc__.split("\n\n")[0],
                      "the firmware's code in a ROMFS image, as make deploy writes it into "
                      "the romfs partition of boards/PANELCAP_ESP32 (default: .mpy files "
                      "loaded into RAM, as make deploy installs them on a stock MicroPython)")
    kb, per_hour = bisect(Scenario(args.scenario, args.hours, args.rom), args.lo, args.hi,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
    print("firmware_heap_kb_%s%s: %d" % (args.scenario, "_rom" if args.rom else "", kb))
    print("heap in use per hour (firmware and simulator, B): %s" % [b for _, b in per_hour])


if __name__ == "__main__":
    main()
