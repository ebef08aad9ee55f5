"""A remote override between the controller's decision and a load's actuator (LoadGate),
and the modes it takes. Apart from commands.py, which parses and validates commands: this
part runs every control pass. The gates are made at build when MQTT is configured
(telemetry.LazyCommands) and pass the controller's commands through in automatic mode;
commands.py is loaded when the first command arrives."""

from loadkind import takes_amps
from shed import AGE_CAP_MS


MODE_AUTO = "auto"
MODE_OFF = "off"
MODE_MAX_A = "max_a"


class Refused(Exception):
    """A command that was not applied; str() is the one-line reason sent back."""


class LoadGate:
    """Sits between the controller's decision and a load's actuator and applies a remote
    override, which can only ever lower what the load draws: hold it off, or cap an EV's
    current. The controller still sheds below the override, and the load's own timing rules
    hold: a contactor is not opened before its min_on time (commands.request_override
    refuses the request), and a load the override stopped is not restarted before its
    min_off / resume pause."""

    def __init__(self, actuator, load, clock):
        self.actuator = actuator
        self.load = load
        self._clock = clock
        self.mode = MODE_AUTO
        self.max_a = 0
        self.until_ms = None
        # What the actuator drives now, and since when: the load's last switching is the
        # output's (a gate made at build, or around an actuator that already ran).
        self._out_on = self._read_out()
        self._out_changed_ms = load.switched_ms
        self._held_until = None      # a stop by the override keeps the load off until then

    def __getattr__(self, name):
        # Everything else (amps, is_on, ops, feedback...) is the actuator's.
        return getattr(self.actuator, name)

    def _read_out(self):
        a = self.actuator
        if takes_amps(a):
            return a.amps > 0
        return bool(getattr(a, "is_on", False))

    def remaining_s(self, now):
        if self.until_ms is None:
            return 0
        left = self._clock.ticks_diff(self.until_ms, now)
        return (left + 999) // 1000 if left > 0 else 0

    def _expire(self, now):
        if self.until_ms is not None and self._clock.ticks_diff(now, self.until_ms) >= 0:
            self.mode = MODE_AUTO
            self.until_ms = None

    def apply(self, load):
        clock = self._clock
        now = clock.ticks_ms()
        self._expire(now)
        a = self.actuator
        mode = self.mode
        modulated = takes_amps(a)
        held = self._held_until is not None and clock.ticks_diff(now, self._held_until) < 0
        if not held:
            self._held_until = None
        if mode == MODE_OFF or (mode == MODE_MAX_A and self.max_a == 0) or \
                (held and load.on):
            if modulated:
                a.set_amps(0)
            else:
                a.set(False)
        elif mode == MODE_MAX_A and load.on:
            sp = load.setpoint_a
            a.set_amps(sp if sp < self.max_a else self.max_a)
        else:
            a.apply(load)
        on = self._read_out()
        if clock.ticks_diff(now, self._out_changed_ms) > AGE_CAP_MS:
            # Long unchanged: pulled forward, as ticks wrap and the age would turn negative.
            self._out_changed_ms = clock.ticks_add(now, -AGE_CAP_MS)
        if on != self._out_on:
            self._out_on = on
            self._out_changed_ms = now
            if not on and mode != MODE_AUTO and load.on:
                # Stopped by the override: honour the load's off time before any restart.
                off_ms = load.min_off_ms
                if modulated and load.resume_pause_ms > off_ms:
                    off_ms = load.resume_pause_ms
                self._held_until = clock.ticks_add(now, off_ms)

    def safe(self):
        self.actuator.safe()
        self._out_on = False

    def describe(self):
        if self.mode == MODE_MAX_A:
            return "max_a %d" % self.max_a
        if self.mode == MODE_OFF:
            return "off"
        if self._held_until is not None:
            return "held"
        return None
