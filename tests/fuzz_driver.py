"""Feeds generated input to the firmware's parsers under the 32-bit port, for
tests/test_fuzz_parsers.py. One process serves a whole run: each stdin line is one case
{"p": parser, ...} (JSON; {"$b": hex} is bytes, {"$f": "nan"} a float JSON cannot carry),
each stdout line what came of it: {"ok": bool (taken), "out": [the lines it printed or
emitted], "changed": bool (any state differs from before), "error": null or the traceback
of anything that escaped}.

    cfg     a call of the REPL console: {"m": "set", "a": [...], "k": {...}} (cfg.set), or
            {"m": "cal.current", ...} (cal.current)
    config  a config file's bytes at boot: {"b": ...}; config.load reads it from flash
    mqtt    one MQTT command: {"t": topic bytes, "b": payload bytes}
    profile one open-profile command to panelcap's actuator (devprofile.Device.on_set, what
            the link hands a message on pcp/<id>_limit/set): {"b": payload bytes}; "out" is
            every message it published, "changed" any limit or device state besides the
            refusal counter
"""

import json
import os
import sys

from standin import machine
import esp32_dinrail as board
import app
import config
import consoleapp
import consolecal
import consolecfg
from fakeclock import FakeClock
from loadgate import MODE_AUTO

DIR = sys.argv[1]
CONFIG = DIR + "/config.json"
PUSHED = DIR + "/pushed.json"


def decode(v):
    if isinstance(v, dict):
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        if "$f" in v:
            return float(v["$f"])
        return {k: decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


said = []


def capture(*args, **kw):
    said.append(" ".join(str(a) for a in args))


# The console prints through its modules' globals: the lines it says are captured.
consolecfg.print = capture
consoleapp.print = capture
consolecal.print = capture

machine.inject(36, 1970)
clock = FakeClock()
base = config.defaults(board)
base["mqtt_host"] = "127.0.0.1"
base["limit_w"] = 9600
with open(CONFIG, "w") as f:
    f.write(config.to_json(base))
BASE_FILE = open(CONFIG).read()
the_app = app.App(board, machine, clock, config.copy(base), log=lambda line: None)
the_app.network_entries()
consoleapp.attach(the_app, CONFIG)
cfg = consolecfg.cfg
events = []


def publish(topic, msg, retain=False):
    if topic.endswith("/event"):
        events.append(json.loads(msg))


the_app.mqtt.publish = publish
lazy = the_app.reporter.commands      # telemetry.LazyCommands: what the link hands messages
lazy.load()
cmds = lazy._cmds                      # the commands.Commands it made: the state to watch


def cfg_state():
    return (config.to_json(cfg.work), config.to_json(cfg.saved), repr(cfg._pending),
            open(CONFIG).read(), config.to_json(the_app.cfg),
            repr([the_app.meter.calibration(i) for i in range(len(board.CHANNELS))]))


def mqtt_state():
    lim = cmds._limits
    return (repr(sorted(lim._sources.items())), cmds.remote_limit_w, cmds._remote_until,
            repr(sorted((n, g.mode, g.max_a, g.until_ms) for n, g in cmds.gates.items())),
            the_app.setpoint_w, config.to_json(the_app.cfg))


def mqtt_reset():
    cmds._limits.clear("remote")
    cmds.remote_limit_w = None
    cmds._remote_until = None
    for g in cmds.gates.values():
        g.mode, g.max_a, g.until_ms = MODE_AUTO, 0, None


def run_cfg(case):
    cfg.start_from(the_app)
    with open(CONFIG, "w") as f:
        f.write(BASE_FILE)
    if "file" in case:                      # a file copied to the board for cfg.push
        with open(PUSHED, "wb") as f:
            f.write(decode(case["file"]))
    before = cfg_state()
    said.clear()
    args = decode(case["a"])
    kwargs = decode(case.get("k", {}))
    m = case["m"]
    getattr(consolecal.cal if m.startswith("cal.") else cfg, m[4:] if m.startswith("cal.")
            else m)(*args, **kwargs)
    refused = bool(said) and said[-1].startswith("error: ")
    return not refused, list(said), cfg_state() != before


def run_config(case):
    data = decode(case["b"])
    with open(DIR + "/boot.json", "wb") as f:
        f.write(data)
    said.clear()
    r = config.load(DIR + "/boot.json", board, log=capture)
    out = list(said)
    # what load() hands the build is always usable, whatever the file held
    problems = config.validate(r.cfg, board)
    if problems:
        out.append("UNUSABLE " + problems[0])
    if r.safe_reason is not None and not isinstance(r.safe_reason, str):
        out.append("UNUSABLE safe_reason %r" % (r.safe_reason,))
    changed = open(DIR + "/boot.json", "rb").read() != data
    return r.safe_reason is None, out, changed


def run_mqtt(case):
    mqtt_reset()
    before = mqtt_state()
    events.clear()
    ok = lazy.handle("panelcap", decode(case["t"]), decode(case["b"]))
    out = [json.dumps(e) for e in events]
    if ok is not True and ok is not False:
        out.append("NOT A BOOL %r" % (ok,))
    return ok, out, mqtt_state() != before


class ProfileLink:
    """The link as devprofile.Device sees it: routes kept, what it publishes recorded."""

    connected = False
    connects = 0

    def __init__(self):
        self.routes = {}
        self.sent = []

    def route(self, topic, handler):
        self.routes[topic] = handler

    def publish(self, topic, msg, retain=False):
        self.sent.append([topic, msg])

    publish_event = publish


import devprofile  # noqa: E402

profile_link = ProfileLink()
device = devprofile.Device(the_app, profile_link, clock, "panelcap", 10000)


def profile_state():
    return (repr(sorted(the_app.limits._sources.items())), device.limit_w, device._heard,
            device._heard_ms, device.accepted, device.state_seq, device.seq,
            the_app.setpoint_w, device.setpoint_w)


def profile_reset():
    the_app.limits.clear(devprofile.SOURCE)
    device.limit_w = None
    device._heard = False
    device._heard_ms = 0


def run_profile(case):
    profile_reset()
    before = profile_state()
    del profile_link.sent[:]
    profile_link.routes[device.t_set](decode(case["b"]))
    out = [json.dumps(m) for m in profile_link.sent]
    acks = [json.loads(m[1]) for m in profile_link.sent if m[0] == device.t_ack]
    ok = len(acks) == 1 and acks[0].get("ok") is True
    changed = profile_state() != before
    if ok:
        # what an accepted command leaves in force: never above the installer's setpoint
        w = the_app.limits.in_force_w().get(devprofile.SOURCE)
        if w is not None and w > the_app.setpoint_w:
            out.append("RAISED %r" % (w,))
    return ok, out, changed


RUN = {"cfg": run_cfg, "config": run_config, "mqtt": run_mqtt, "profile": run_profile}

for line in sys.stdin:
    case = json.loads(line)
    try:
        ok, out, changed = RUN[case["p"]](case)
        answer = {"ok": ok, "out": out, "changed": changed, "error": None}
    except Exception as e:     # noqa: whatever escapes a parser is the finding
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        answer = {"ok": False, "out": list(said), "changed": None, "error": buf.getvalue()}
    print(json.dumps(answer))
