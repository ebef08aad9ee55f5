"""Remote commands: parses, checks and applies each one (validated completely before it
changes anything, applied through the controller's own rules, answered with an event), and
holds what they leave behind: the remote limit and its expiry, the counters and the per-load
override gates. Pure: no network here. Loaded with the first command (telemetry.LazyCommands).

Topics (under the prefix): cmd/limit, cmd/load/<name>, cmd/status, cmd/grid/<sub> (grid
signals: handed to grid.py, imported only when one arrives). See docs/mqtt.md."""

import gc
import json

from micropython import const

from loadkind import takes_amps

# LoadGate, its modes and Refused live in loadgate.py: the gates, made at build
# (telemetry.LazyCommands), run every control pass; commands.X still works.
from loadgate import MODE_AUTO, MODE_MAX_A, MODE_OFF, LoadGate, Refused  # noqa: F401

_MAX_PAYLOAD = const(256)       # bytes; a longer payload is refused unparsed
_MAX_DURATION_S = const(86400)
_REMOTE_SOURCE = "remote"       # the limits.Limits source a remote limit lives in
_MAX_ID_LEN = const(32)
_MAX_GRID_PAYLOAD = const(900)   # a schedule; with its topic it fits the link's 1 KiB packets
_GRID = ("limits", "reserve", "answer", "emergency", "cancel", "time", "log", "ack")


def _int_field(obj, key, lo, hi, unit):
    if key not in obj:
        raise Refused("%s is missing: an int in %d..%d%s" % (
            key, lo, hi, (" " + unit) if unit else ""))
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise Refused("%s must be an int in %d..%d%s, got %s" % (
            key, lo, hi, (" " + unit) if unit else "", _short(v)))
    return v


def _short(v):
    text = repr(v)
    return text if len(text) <= 24 else text[:21] + "..."


def _printable(text):
    # The id is echoed in the event: a lone surrogate from a "\ud800" escape would make it
    # bytes that are not UTF-8, and a control character would break a log line.
    for c in text:
        if not 32 <= ord(c) < 127:
            return False
    return True


def _only(obj, allowed):
    for key in obj:
        if key not in allowed:
            raise Refused("unknown field %s" % _short(key))


def handle(cmds, prefix, topic, payload):
    """One received message. Returns True if applied. Never raises on bad input."""
    try:
        name, obj, ident = _parse(cmds, prefix, topic, payload)
    except Refused as e:
        cmds.refused += 1
        cmds._emit({"cmd": _topic_name(prefix, topic), "ok": False, "error": str(e)})
        return False
    event = {"cmd": name, "ok": True}
    if ident is not None:
        event["id"] = ident
    try:
        if name == "limit":
            _limit(cmds, obj, event)
        elif name == "status":
            if cmds._request_status is not None:
                cmds._request_status()
        elif name.startswith("grid/"):
            if cmds._grid is None:
                raise Refused("grid signals need mqtt (app.get_grid)")
            try:
                event.update(cmds._grid().command(name[5:], obj, cmds._clock.ticks_ms()))
            except ValueError as e:
                raise Refused(str(e))
        else:
            _load(cmds, name[5:], obj, event)
    except Refused as e:
        cmds.refused += 1
        event["ok"] = False
        event["error"] = str(e)
        cmds._emit(event)
        return False
    except MemoryError:
        # Building the grid on its first message, or a schedule's arrays: the sender must
        # hear that the command was not confirmed (a grid counts on the answer), and what
        # failed to fit is garbage once collected, so the answer itself finds room.
        gc.collect()
        cmds.refused += 1
        event["ok"] = False
        event["error"] = "out of memory (%d bytes free)" % gc.mem_free()
        cmds._emit(event)
        return False
    cmds.accepted += 1
    cmds._emit(event)
    return True


def _parse(cmds, prefix, topic, payload):
    """(command name, fields, id): everything checked that does not need state."""
    try:
        topic = topic.decode() if isinstance(topic, (bytes, bytearray)) else topic
    except UnicodeError:
        raise Refused("topic is not UTF-8")
    head = prefix + "/cmd/"
    if not topic.startswith(head):
        raise Refused("not a command topic")
    name = topic[len(head):]
    if name not in ("limit", "status") and not (name.startswith("grid/") and
                                                name[5:] in _GRID):
        if not name.startswith("load/") or name[5:] not in cmds.gates:
            raise Refused("unknown command %s" % _short(name))
    most = _MAX_GRID_PAYLOAD if name == "grid/limits" else _MAX_PAYLOAD
    if len(payload) > most:
        # (also a message the link skipped unread for its size: net.Oversized)
        raise Refused("payload longer than %d bytes" % most)
    if name == "status" and not payload:
        return name, {}, None
    try:
        text = payload.decode() if isinstance(payload, (bytes, bytearray)) else payload
        obj = json.loads(text)
    except Exception:  # untrusted bytes: whatever the parser objects to, refuse
        raise Refused("payload is not a JSON object")
    if not isinstance(obj, dict):
        raise Refused("payload is not a JSON object")
    ident = obj.get("id")
    if ident is not None and not (
            (isinstance(ident, str) and len(ident) <= _MAX_ID_LEN and _printable(ident)) or
            (isinstance(ident, int) and not isinstance(ident, bool) and
             -(1 << 30) <= ident < (1 << 30))):
        raise Refused("id must be a string of up to %d printable ASCII characters or an int"
                      % _MAX_ID_LEN)
    if name == "status":
        _only(obj, ("id",))
    return name, obj, ident


def _limit(cmds, obj, event):
    _only(obj, ("id", "limit_w", "duration_s"))
    if "limit_w" not in obj:
        raise Refused("limit_w is required (an int, or null to clear)")
    if obj["limit_w"] is None:
        if "duration_s" in obj:
            raise Refused("duration_s goes with a limit_w, not with a clear")
        cmds._limits.clear(_REMOTE_SOURCE)
        cmds.remote_limit_w = None
        cmds._remote_until = None
        event["limit_w"] = None
        return
    # A remote limit may only lower: never above the installer's setpoint.
    w = _int_field(obj, "limit_w", cmds.min_limit_w, cmds.setpoint_w, "W")
    dur = _int_field(obj, "duration_s", 1, _MAX_DURATION_S, "s")
    clock = cmds._clock
    until = clock.ticks_add(clock.ticks_ms(), dur * 1000)
    cmds._limits.set(_REMOTE_SOURCE, w=w, until_ms=until)
    cmds.remote_limit_w = w
    cmds._remote_until = until
    event["limit_w"] = w
    event["duration_s"] = dur


def _load(cmds, name, obj, event):
    _only(obj, ("id", "mode", "max_a", "duration_s"))
    mode = obj.get("mode")
    if mode not in (MODE_AUTO, MODE_OFF, MODE_MAX_A):
        raise Refused("mode must be auto, off or max_a, got %s" % _short(mode))
    max_a = 0
    dur = 0
    if mode == MODE_AUTO:
        if "max_a" in obj or "duration_s" in obj:
            raise Refused("mode auto takes no max_a or duration_s")
    else:
        if mode == MODE_MAX_A:
            max_a = _int_field(obj, "max_a", 0, 80, "A")
        elif "max_a" in obj:
            raise Refused("mode off takes no max_a")
        dur = _int_field(obj, "duration_s", 1, _MAX_DURATION_S, "s")
    request_override(cmds.gates[name], mode, max_a, dur)
    event["load"] = name
    event["mode"] = mode
    if mode == MODE_MAX_A:
        event["max_a"] = max_a
    if dur:
        event["duration_s"] = dur


def request_override(gate, mode, max_a, duration_s):
    """Check an override against gate's load and its timing; raise Refused or set it."""
    load = gate.load
    clock = gate._clock
    now = clock.ticks_ms()
    modulated = takes_amps(gate.actuator)
    if mode == MODE_MAX_A:
        if not modulated:
            raise Refused("%s takes no current setpoint; use mode off or auto" % load.name)
        if max_a != 0 and max_a < load.min_a:
            raise Refused("max_a must be 0 (pause) or %d..%d A for %s, got %d" % (
                load.min_a, load.max_a, load.name, max_a))
        if max_a > load.max_a:
            raise Refused("max_a must be at most %d A for %s (its rating), got %d" % (
                load.max_a, load.name, max_a))
    stops = mode == MODE_OFF or (mode == MODE_MAX_A and max_a == 0)
    if stops and gate._out_on and not modulated:
        on_ms = clock.ticks_diff(now, gate._out_changed_ms)
        if on_ms < load.min_on_ms:
            raise Refused("%s switched on %d s ago; its min_on time is %d s" % (
                load.name, on_ms // 1000, load.min_on_ms // 1000))
    gate.mode = mode
    gate.max_a = max_a if mode == MODE_MAX_A else 0
    gate.until_ms = None if mode == MODE_AUTO else clock.ticks_add(now, duration_s * 1000)


def _topic_name(prefix, topic):
    try:
        t = topic.decode() if isinstance(topic, (bytes, bytearray)) else str(topic)
    except UnicodeError:
        return "?"
    head = prefix + "/cmd/"
    t = t[len(head):] if t.startswith(head) else t
    return t if len(t) <= 40 else t[:37] + "..."


class Commands:
    """Takes remote commands (handle) and holds what they set. limits: the limits.Limits;
    gates: {name: LoadGate}; setpoint_w: the installer's limit, above which no remote limit
    is accepted; request_status: called (no arguments) to publish state now; emit(dict):
    sends an event."""

    def __init__(self, limits, gates, clock, setpoint_w, emit, request_status=None,
                 min_limit_w=0, grid=None):
        self._limits = limits
        self._grid = grid            # called with no arguments: the grid.Grid (built on demand)
        self.gates = gates
        self._clock = clock
        self.setpoint_w = setpoint_w
        self.min_limit_w = min_limit_w
        self._emit = emit
        self._request_status = request_status
        self.remote_limit_w = None
        self._remote_until = None
        self.accepted = 0
        self.refused = 0

    def remote_limit(self, now):
        """(watts, seconds left) of the remote limit in force, or (None, 0)."""
        if self._remote_until is None:
            return None, 0
        left = self._clock.ticks_diff(self._remote_until, now)
        if left <= 0:
            self.remote_limit_w = None
            self._remote_until = None
            return None, 0
        return self.remote_limit_w, (left + 999) // 1000

    def handle(self, prefix, topic, payload):
        """One received message. Returns True if applied. Never raises on bad input."""
        return handle(self, prefix, topic, payload)
