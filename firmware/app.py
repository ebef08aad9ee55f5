"""Starts the firmware: builds the hardware from the board file, wires sampler, meter,
shed controller and actuators into supervised tasks, and keeps every output safe on any
exit. The same file runs on the ESP32 and, against a simulated board, on the unix port."""

import asyncio
import gc

import actuators
import control
import hw as hw_factory
import meter as meter_mod
import sampler as sampler_mod
import settings
import shed
import supervisor as supervisor_mod
from version import VERSION


def _channel_index(board, name):
    for i, ch in enumerate(board.CHANNELS):
        if ch["name"] == name:
            return i
    raise ValueError("load CT %r is not a channel of board %s" % (name, board.NAME))


class App:
    def __init__(self, board, machine, clock, cfg=None, log=print):
        self.board = board
        self.clock = clock
        self.cfg = cfg = settings.merged(cfg)
        self.log = log
        self.hw = hw = hw_factory.build(board, machine)
        self.reset_cause = hw.reset_cause()
        nch = len(board.CHANNELS)
        hz = board.MAINS_HZ
        self.meter = meter_mod.Meter(board.CHANNELS, board.ADC_SLOT_US, board.MAINS_VOLTS, hz)
        rounds = sampler_mod.window_rounds(nch, board.ADC_SLOT_US, hz, cfg["window_cycles"])
        self.sampler = sampler_mod.Sampler(hw.scanner, self.meter, clock, nch, rounds,
                                           cfg["sample_period_ms"])
        self.setpoint_w = settings.setpoint_w(cfg)
        self.limits = shed.Limits(setpoint_w=self.setpoint_w, volts=cfg["volts"],
                                  band_pct=cfg["band_pct"],
                                  rating_a=cfg["panel_rating_a"])
        self.bindings = [self._bind(spec) for spec in cfg["loads"]]
        self.controller = shed.Controller([b.load for b in self.bindings], self.limits, clock,
                                          stale_ms=cfg["stale_ms"])
        self.control = control.ControlLoop(self.controller, self.sampler, self.bindings, clock,
                                           cfg["control_period_ms"])
        self.supervisor = None

    def _bind(self, spec):
        kind = {"onoff": shed.KIND_ONOFF, "modulated": shed.KIND_MODULATED,
                "never": shed.KIND_NEVER}[spec["kind"]]
        extra = {}
        for key in ("min_on_s", "min_off_s", "max_a", "min_a", "resume_pause_s"):
            if key in spec:
                extra[key] = spec[key]
        load = shed.Load(spec["name"], kind, spec["priority"], spec["leg"], spec["rated_w"],
                         **extra)
        if "output" in spec:
            index = spec["output"]
            feedback = self.hw.feedback[index] if index < len(self.hw.feedback) else None
            actuator = actuators.Contactor(self.hw.outputs[index], feedback)
        elif spec.get("driver") == "pilot":
            if self.hw.pilot is None:
                raise ValueError("load %s needs a J1772 pilot, board has none" % spec["name"])
            actuator = actuators.PilotCharger(self.hw.pilot, spec["max_a"])
        else:
            raise ValueError("load %s has no output or driver" % spec["name"])
        ct = _channel_index(self.board, spec["ct"]) if spec.get("ct") else -1
        return control.Binding(load, actuator, ct)

    def force_safe(self):
        """Every controllable load off, the EV paused. Safe to call any number of times."""
        for b in self.bindings:
            try:
                b.actuator.safe()
            except Exception as e:  # keep going: the other outputs still need to be safe
                self.log("force_safe: %s: %s" % (b.load.name, e))

    def banner(self):
        gc.collect()
        self.log("panelcap %s on %s: reset cause %s, free heap %d bytes, setpoint %d W" % (
            VERSION, self.board.NAME, self.reset_cause, gc.mem_free(), self.setpoint_w))

    def tasks(self):
        cfg = self.cfg
        stale = cfg["stale_ms"]
        return [
            supervisor_mod.Supervised("sampler", lambda: self.sampler,
                                      cfg["sample_period_ms"] + stale),
            supervisor_mod.Supervised("control", lambda: self.control,
                                      cfg["control_period_ms"] + stale),
        ]

    async def run(self, extra=()):
        """Runs until cancelled. `extra` are coroutines run beside the tasks (simulator)."""
        self.banner()
        wdt = self.hw.start_watchdog(getattr(self.board, "WDT_TIMEOUT_MS", 8000))
        self.supervisor = supervisor_mod.Supervisor(
            self.clock, self.tasks(), self.force_safe, wdt,
            period_ms=self.cfg["supervisor_period_ms"], log=self.log)
        for coro in extra:
            asyncio.create_task(coro)
        await self.supervisor.run()


def run(board=None, machine=None, clock=None, cfg=None):
    """Entry point (main.py calls this on the board)."""
    if board is None:
        import board
    if machine is None:
        import machine
    if clock is None:
        from clock import Clock
        clock = Clock()
    app = None
    try:
        app = App(board, machine, clock, cfg)
        asyncio.run(app.run())
    finally:
        # Whatever ended the run (Ctrl-C, a bug, a reset request), nothing stays energised.
        if app is not None:
            app.force_safe()
