"""panelcap as a device of the open profile (docs/profile.md, "panelcap-profile/0.1"): a
sensor (the panel's reading, numbered, every interval) and an actuator (a lower limit a
controller may set, acknowledged, never above the installer's setpoint; dropped, back to the
setpoint, when the controller has been silent longer than the announcement says).
Imported by netsetup only when MQTT is configured; talks to the link only through its public,
non-blocking methods (publish, send, route, subscribe). Timing is on the network clock: the
announced seconds are the ones a controller on the broker counts."""

import asyncio
import json

from micropython import const

PROFILE = "panelcap-profile/0.1"
ROOT = "pcp"
SOURCE = "profile"              # the limits.Limits source a controller's limit lives in
_MAX_PAYLOAD = const(256)
_MAX_ID_LEN = const(32)
_RESPONSE_S = const(2)          # ack at once; the limit is in force by the next control step
_MIN_WAIT_S = const(5)
_WAKE_MS = const(200)
_MIN_SLEEP_MS = const(20)


class Refused(Exception):
    pass


def check_command(obj, lo, hi):
    """(id, setpoint W or None) from a decoded command, or raise Refused (one line)."""
    if not isinstance(obj, dict):
        raise Refused("payload is not a JSON object")
    ident = obj.get("id")
    if not _valid_id(ident):
        raise Refused("id is required: 1..%d printable ASCII characters or an int" %
                      _MAX_ID_LEN)
    for key in obj:
        if key not in ("id", "setpoint"):
            raise Refused("unknown field %s" % _short(key))
    if "setpoint" not in obj:
        raise Refused("setpoint is required: an int in %d..%d W" % (lo, hi))
    v = obj["setpoint"]
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        # A controller can lower the limit, never raise it past the installer's setpoint.
        raise Refused("setpoint must be an int in %d..%d W, got %s" % (lo, hi, _short(v)))
    return ident, v


def _valid_id(ident):
    return (isinstance(ident, str) and 1 <= len(ident) <= _MAX_ID_LEN and _printable(ident)) \
        or (isinstance(ident, int) and not isinstance(ident, bool) and 0 <= ident < (1 << 30))


def _printable(text):
    for c in text:
        if not 32 <= ord(c) < 127:
            return False
    return True


def _short(v):
    text = repr(v)
    return text if len(text) <= 24 else text[:21] + "..."


class Device:
    """The profile's sensor `<node>_mains` and actuator `<node>_limit` for `app`, on `link`.
    interval_ms: readings and heartbeats; the controller may be silent wait_ms (3 intervals,
    at least 5 s) before the actuator takes its safe state (no controller limit)."""

    def __init__(self, app, link, clock, node, interval_ms, availability=None):
        self.app = app
        self.link = link
        self._clock = clock
        self.sensor_id = node + "_mains"
        self.actuator_id = node + "_limit"
        self.interval_ms = interval_ms
        wait_s = 3 * ((interval_ms + 999) // 1000)
        self.wait_s = wait_s if wait_s > _MIN_WAIT_S else _MIN_WAIT_S
        self.availability = availability
        self.setpoint_w = app.setpoint_w
        s = ROOT + "/" + self.sensor_id + "/"
        a = ROOT + "/" + self.actuator_id + "/"
        self.t_sensor_ann = s + "announce"
        self.t_reading = s + "reading"
        self.t_actuator_ann = a + "announce"
        self.t_state = a + "state"
        self.t_set = a + "set"
        self.t_ack = a + "ack"
        self.t_alive = a + "alive"
        self.seq = 0
        self.state_seq = 0
        self.limit_w = None          # the controller's lower limit, None: none
        now = clock.ticks_ms()
        self._heard_ms = now
        self._heard = False          # a controller has spoken since the last safe state
        self._next_ms = now
        self._subscribed = 0         # link.connects when announced and subscribed
        self.accepted = 0
        self.refused = 0
        self.safe_count = 0
        self.heartbeat_ms = None
        link.route(self.t_set, self.on_set)
        link.route(self.t_alive, self.on_alive)

    # --- what arrives (called by the link's task: never waits) -------------------------
    def on_alive(self, msg):
        self._heard_ms = self._clock.ticks_ms()
        self._heard = True

    def on_set(self, msg):
        ident = None
        try:
            if len(msg) > _MAX_PAYLOAD:
                raise Refused("payload longer than %d bytes" % _MAX_PAYLOAD)
            try:
                obj = json.loads(msg)
            except Exception:  # untrusted bytes: whatever the parser objects to, refuse
                raise Refused("payload is not a JSON object")
            if isinstance(obj, dict) and _valid_id(obj.get("id")):
                ident = obj["id"]     # echoed in a refusal only when it is a valid id
            ident, w = check_command(obj, 0, self.setpoint_w)
        except Refused as e:
            self.refused += 1
            self._ack({"id": ident, "ok": False, "error": str(e)})
            return
        self.on_alive(msg)
        if w < self.setpoint_w:
            self.app.limits.set(SOURCE, w=w)
            self.limit_w = w
        else:
            self.app.limits.clear(SOURCE)
            self.limit_w = None
        self.accepted += 1
        self._ack({"id": ident, "ok": True, "setpoint": w})
        self._state()

    def _ack(self, d):
        self.link.publish_event(self.t_ack, json.dumps(d))    # an answer: never evicted

    # --- the task ----------------------------------------------------------------------
    async def run(self):
        clock = self._clock
        while True:
            now = self.heartbeat_ms = clock.ticks_ms()
            link = self.link
            if self._heard and clock.ticks_diff(now, self._heard_ms) > self.wait_s * 1000:
                self._safe()
            if link.connected and link.connects != self._subscribed:
                if await self._announce():
                    self._subscribed = link.connects
            if link.connected and clock.ticks_diff(now, self._next_ms) >= 0:
                self._next_ms = clock.ticks_add(now, self.interval_ms)
                self._reading()
                self._state()
            left = clock.ticks_diff(self._next_ms, clock.ticks_ms())
            # Never 0: a task that only yields would hold the simulator's virtual time still.
            await asyncio.sleep_ms(_WAKE_MS if left > _WAKE_MS or not link.connected else
                                   (left if left > _MIN_SLEEP_MS else _MIN_SLEEP_MS))

    def _safe(self):
        # The announced safe state: the controller's limit dropped, the installer's setpoint
        # (and every other source) holds; this panel keeps its own limit (SGr's SafeCurrent).
        self._heard = False
        if self.limit_w is not None:
            self.app.limits.clear(SOURCE)
            self.limit_w = None
            self.safe_count += 1
            self._state()

    async def _announce(self):
        link = self.link
        if not (link.subscribe(self.t_set) and link.subscribe(self.t_alive)):
            return False
        for topic, payload in ((self.t_sensor_ann, self._sensor_announcement()),
                               (self.t_actuator_ann, self._actuator_announcement())):
            # Drained before the next: telemetry is published drop-oldest, and a burst of it
            # evicted a queued announcement (seen: the actuator's, now and then).
            if not await link.send(topic, payload, True) or not await link.drained():
                return False
        return True

    def _common(self, role, dev_id):
        return {"profile": PROFILE, "role": role, "id": dev_id, "maker": "panelcap",
                "availability": self.availability, "interval_s": (self.interval_ms + 999) // 1000}

    def _sensor_announcement(self):
        d = self._common("sensor", self.sensor_id)
        d["quantities"] = ["w", "ma", "mv"]
        d["legs"] = ["L1", "L2"]
        d["range"] = {"w": [-500000, 500000], "ma": [0, 2000000], "mv": [0, 600000]}
        return json.dumps(d)

    def _actuator_announcement(self):
        d = self._common("actuator", self.actuator_id)
        lim = self.app.limits
        d["control"] = "setpoint"
        d["unit"] = "W"
        d["min"] = 0
        d["max"] = self.setpoint_w
        d["rated_w"] = self.setpoint_w
        d["leg"] = "L1L2" if lim.legs == 2 else "L1"
        d["min_a"] = 0
        d["max_a"] = lim.setpoint_a if lim.setpoint_a else \
            self.setpoint_w // (lim.volts * lim.legs)
        d["response_s"] = _RESPONSE_S
        d["safe_state"] = {"setpoint": self.setpoint_w}
        d["max_wait_s"] = self.wait_s
        return json.dumps(d)

    def _reading(self):
        app = self.app
        m = app.meter
        self.seq = (self.seq + 1) & 0x3FFFFFFF
        self.link.publish(self.t_reading, json.dumps({
            "seq": self.seq, "valid": bool(app.sampler.valid), "w": m.total_w,
            "ma": [m.leg_ma[0], m.leg_ma[1]], "mv": m.vrms_mv}))

    def _state(self):
        # The actuator's heartbeat: what it holds now, and whether it is in its safe state.
        self.state_seq = (self.state_seq + 1) & 0x3FFFFFFF
        w = self.limit_w
        self.link.publish(self.t_state, json.dumps({
            "seq": self.state_seq, "setpoint": self.setpoint_w if w is None else w,
            "safe": w is None and not self._heard}))
