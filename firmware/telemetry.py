"""Reporting over MQTT: builds the state and diagnostics payloads, Home Assistant discovery
(discovery.py) after each connect, hands them to the network link's bounded queue, and passes
received commands to `commands`.
Reads the control objects, never waits on them; see docs/mqtt.md for every topic."""

import asyncio
import gc
import json
import sys

from micropython import const

import snapshot
from version import VERSION

_WAKE_MS = const(250)           # how often a received command is looked at
_COMMANDS_PER_PASS = const(2)
_STEP_WAIT_MS = const(50)       # how often a report held for the control step looks again


class LazyCommands:
    """commands.Commands, built when the first command arrives: until then its code (7.4 KB
    from .mpy, 3.8 KB from the romfs partition, 32-bit port) is not in RAM. Before that no
    remote limit is set and nothing has been counted. The override gates are installed here,
    at build, around every load's actuator: in automatic mode they pass the controller's
    commands through, so nothing is rewired while running (loadgate.py: 1.4 KB from .mpy,
    0.8 KB from flash). Built here, not in netsetup.py: a function made there would keep
    that module's code alive."""

    def __init__(self, app):
        from loadgate import LoadGate
        self._app = app
        self._cmds = None
        self.gates = {}              # {load name: LoadGate}
        self.reporter = None         # emits the answers (set once the Reporter exists)
        for b in app.bindings:
            if not isinstance(b.actuator, LoadGate):
                b.actuator = LoadGate(b.actuator, b.load, app.clock)
            self.gates[b.load.name] = b.actuator

    def load(self):
        """Builds the Commands; True if this call did (imported commands.py)."""
        if self._cmds is not None:
            return False
        import commands
        app = self._app
        rep = self.reporter
        self._cmds = commands.Commands(app.limits, self.gates, app.clock, app.setpoint_w,
                                       emit=rep.emit, request_status=rep.request_status,
                                       grid=getattr(app, "get_grid", None))
        self._app = None
        return True

    def handle(self, prefix, topic, payload):
        self.load()
        return self._cmds.handle(prefix, topic, payload)

    def remote_limit(self, now):
        return (None, 0) if self._cmds is None else self._cmds.remote_limit(now)

    def __getattr__(self, name):
        # accepted, refused, ...: the Commands' own once it exists
        if self._cmds is None:
            if name == "accepted" or name == "refused":
                return 0
            raise AttributeError(name)
        return getattr(self._cmds, name)


class Reporter:
    """The reporting task: every period_ms one state and one diag message; discovery and
    retained info after each (re)connect; commands from the link's inbox as they come."""

    def __init__(self, app, link, cmds, clock, period_ms, prefix, node, discovery_prefix=""):
        self.app = app
        self.link = link
        self.commands = cmds
        self._clock = clock
        self.period_ms = period_ms
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.node = node             # prefix as an id: Home Assistant's unique_id stem
        self.topic_state = prefix + "/state"
        self.topic_diag = prefix + "/diag"
        self.topic_event = prefix + "/event"
        self._announced = 0          # link.connects when discovery was last sent
        self._status_wanted = False
        self._last_ms = clock.ticks_ms()
        self._uptime_ms = 0
        self.reports = 0
        self.errors = 0
        self.heartbeat_ms = None

    def request_status(self):
        self._status_wanted = True

    def emit(self, event):
        event["uptime_s"] = self._uptime_ms // 1000
        self.link.publish(self.topic_event, json.dumps(event))

    def _tick(self):
        # Uptime by accumulation: ticks wrap (2**30 ms on the ESP32), a running sum does not.
        now = self._clock.ticks_ms()
        self._uptime_ms += self._clock.ticks_diff(now, self._last_ms)
        self._last_ms = now
        return now

    async def run(self):
        clock = self._clock
        next_ms = self._tick()
        step_seen = None     # control.steps when commands were last handled
        since_ms = 0
        while True:
            now = self._tick()
            self.heartbeat_ms = now
            link = self.link
            try:
                if link.connected and link.connects != self._announced:
                    self._announced = link.connects
                    await self._announce()
                handled = False
                for _ in range(_COMMANDS_PER_PASS):
                    msg = link.inbox.get()
                    if msg is None:
                        break
                    handled = True
                    self.commands.handle(self.prefix, msg[0], msg[1])
                now = self._tick()
                control = getattr(self.app, "control", None)
                if handled and control is not None and step_seen is None:
                    step_seen = control.steps
                    since_ms = now
                # A command shows in the state once the controller has stepped on it: the
                # report waits for that step (a stalled controller: one report period, and
                # a flood of commands cannot hold reports back longer either).
                if step_seen is not None and (control.steps != step_seen or
                                              clock.ticks_diff(now, since_ms) >= self.period_ms):
                    step_seen = None
                # While the controller runs, the first state waits for its first step (its
                # first measurement takes a few scans): before it, limit and state are unset.
                ready = control is None or control.steps or not self.app.running
                if ready and step_seen is None and (self._status_wanted or
                                                    clock.ticks_diff(now, next_ms) >= 0):
                    self._status_wanted = False
                    next_ms = clock.ticks_add(now, self.period_ms)
                    # A state is a snapshot: while the link is down the next one replaces it,
                    # so none waits in RAM for the broker (the outage costs no heap).
                    if link.connected:
                        self.report(now)
            except Exception as e:  # reporting is optional: a bug here must not count as
                # a crash toward the supervisor's give-up, which would reset the board
                self.errors += 1
                if self.errors <= 3:
                    self.app.log("report: %s: %s" % (type(e).__name__, e))
            left = clock.ticks_diff(next_ms, clock.ticks_ms())
            if step_seen is not None:
                left = _STEP_WAIT_MS
            elif left > _WAKE_MS:
                left = _WAKE_MS
            await asyncio.sleep_ms(left if left > 0 else 0)

    def report(self, now):
        self.link.publish(self.topic_state, json.dumps(self.state(now)))
        self.link.publish(self.topic_diag, json.dumps(self.diag()))
        self.reports += 1

    # --- payloads ---------------------------------------------------------------------
    def state(self, now):
        # The status snapshot the web page's /api/status serves too (snapshot.py), in MQTT's
        # shape: loads keyed by name, without the page's own fields.
        app = self.app
        cmds = self.commands
        s = snapshot.status(app, now, cmds.gates, cmds.remote_limit(now))
        loads = {}
        for d in s["loads"]:
            name = d.pop("name")
            d.pop("state")
            d.pop("reason")
            if "output_on" in d:
                d.pop("setpoint_a")     # a contactor load: MQTT never had one
            loads[name] = d
        s["loads"] = loads
        s.pop("leg_a")
        s.pop("alarms")
        s["grid"] = app.grid.state(now) if getattr(app, "grid", None) is not None else None
        return s

    def diag(self):
        app = self.app
        sup = app.supervisor
        tasks = {}
        if sup is not None:
            for e in sup.entries:
                tasks[e.name] = e.crashes
        c = app.controller
        return {
            "version": VERSION,
            "board": app.board.NAME,
            "reset_cause": app.reset_cause,
            "uptime_s": self._uptime_ms // 1000,
            "free_heap": gc.mem_free(),
            "windows": app.sampler.windows,
            "control_steps": app.control.steps,
            "failsafe_count": c.failsafe_count,
            "wdt_feeds": sup.feeds if sup is not None else 0,
            "supervisor_failed": sup.failed if sup is not None else False,
            "task_crashes": tasks,
            "switch_ops": {b.load.name: b.load.switch_ops for b in app.bindings},
            "contactor_ops": app.wear.totals() if app.wear is not None else {},
            "forced_ops": {b.load.name: b.load.forced_ops for b in app.bindings},
            "mqtt": self.link.info(),
            "commands": {"accepted": self.commands.accepted, "refused": self.commands.refused},
            "report_errors": self.errors,
        }

    # --- Home Assistant discovery (discovery.py) -----------------------------------------
    async def _announce(self):
        # discovery.py is imported for the announcement only and dropped after: its code
        # (2.5 KB on the 32-bit port) is not in RAM between (re)connects, nor at the peak
        # a grid schedule brings.
        if self.discovery_prefix:
            import discovery
            try:
                for topic, payload in discovery.configs(self):
                    if not await self.link.send(topic, payload, True):
                        self._announced = 0      # link went down: send it all again next time
                        return
                    self.heartbeat_ms = self._clock.ticks_ms()
            finally:
                discovery = None
                # once per connect: kept, 3.2 KB from .mpy, 0.7 KB from flash
                sys.modules.pop("discovery", None)
        # Let the retained messages out before telemetry (drop-oldest) can evict one.
        if not await self.link.drained():
            self._announced = 0
