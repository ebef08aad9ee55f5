"""The simulated `machine` layer: what the firmware's hw.build() sees on the unix port.
Pins, signals, PWM and the watchdog behave like MicroPython's ESP32 port and are wired to
the simulated panel: a contactor closes when its coil pin is at its active level, the EV
reads the J1772 pilot's duty cycle, and the ADC block samples the panel's waveforms. What it
shares with the stand-in board's machine is in panelsim.machinecore."""

import time

from panelsim.machinecore import (PWRON_RESET, HARD_RESET, WDT_RESET,  # noqa: F401
                                  DEEPSLEEP_RESET, SOFT_RESET, Pin as _Pin, Signal, ADC, idle)


class WatchdogReset(Exception):
    """The simulated board was reset by its watchdog; the simulator reboots the firmware."""


class _Board:
    # What the layer is attached to: set by attach() before the firmware builds hardware.
    panel = None
    vt = None
    board = None
    adcgen = None
    reset_cause = PWRON_RESET
    pin_levels = {}
    outputs = {}     # pin number -> output index
    inputs = {}      # pin number -> output index whose auxiliary contact it reads
    wdt = None
    adc_read_us = 0  # what a read costs the ESP32's scheduler (0: scans are instant)


_sim = _Board()


def attach(panel, vt, board, adcgen, reset_cause=PWRON_RESET, adc_read_us=0):
    """adc_read_us: a scan holds the scheduler for that long per read, as on the ESP32
    (the board's ADC_SLOT_US; vtime.VirtualTime.hold_us); 0: scans are instant."""
    _sim.panel = panel
    _sim.vt = vt
    _sim.board = board
    _sim.adcgen = adcgen
    _sim.reset_cause = reset_cause
    _sim.pin_levels = {}
    _sim.outputs = {spec["pin"]: i for i, spec in enumerate(board.OUTPUTS)}
    _sim.inputs = {spec["pin"]: i for i, spec in enumerate(getattr(board, "FEEDBACK", ()))}
    _sim.wdt = None
    _sim.adc_read_us = adc_read_us


def reset_cause():
    return _sim.reset_cause


def _pin_changed(pin_id, level):
    _sim.pin_levels[pin_id] = level
    index = _sim.outputs.get(pin_id)
    if index is not None and _sim.panel is not None:
        spec = _sim.board.OUTPUTS[index]
        energised = bool(level) != bool(spec.get("invert", False))
        t0 = _sim.vt.sim_begin()       # the panel's physics: the simulator's work, not the board's
        _sim.panel.advance_to(_sim.vt.elapsed_ms())
        _sim.panel.set_contactor(index, energised)
        _sim.vt.sim_end(t0)


def _input_level(pin_id, default):
    # An auxiliary contact follows the contactor's real state (welded contacts included).
    index = _sim.inputs.get(pin_id)
    if index is None or _sim.panel is None or not hasattr(_sim.panel, "contact_closed"):
        return default
    closed = _sim.panel.contact_closed(index)
    invert = _sim.board.FEEDBACK[index].get("invert", False)
    return 0 if closed == bool(invert) else 1


class Pin(_Pin):
    def _drive(self, level):
        _pin_changed(self.id, level)

    def _read(self):
        if self.mode == Pin.IN:
            return _input_level(self.id, self._level)
        return self._level


def pilot_amps_offered(duty_u16):
    """The current a J1772 vehicle reads from the pilot's duty cycle (SAE J1772 table);
    a steady signal (0 % or 100 %) offers nothing."""
    pct_x100 = (duty_u16 * 10000 + 32767) // 65535
    # A vehicle measures the duty to a tolerance; it takes the nearest whole amp.
    if 1000 <= pct_x100 <= 8500:
        return (pct_x100 * 6 + 500) // 1000           # A = duty % * 0.6
    if 8500 < pct_x100 <= 9600:
        return ((pct_x100 - 6400) * 25 + 500) // 1000  # A = (duty % - 64) * 2.5
    return 0


class PWM:
    def __init__(self, pin, freq=1000, duty_u16=0):
        self._pin = pin
        self._freq = freq
        self._duty = 0
        self.duty_u16(duty_u16)

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        if _sim.panel is not None:
            t0 = _sim.vt.sim_begin()
            _sim.panel.advance_to(_sim.vt.elapsed_ms())
            _sim.panel.set_pilot_amps(pilot_amps_offered(d))
            _sim.vt.sim_end(t0)

    def deinit(self):
        self.duty_u16(65535)


class WDT:
    """Resets the board (raises WatchdogReset out of the scheduler) when not fed in time."""

    def __init__(self, id=0, timeout=5000):
        self.timeout_ms = timeout
        self._fed_ms = _sim.vt.now_ms()
        _sim.wdt = self
        _sim.vt.watch(self._check)

    def feed(self):
        self._fed_ms = _sim.vt.now_ms()

    def _check(self, now_ms):
        starved_ms = time.ticks_diff(now_ms, self._fed_ms)     # ticks wrap: never a plain -
        if _sim.wdt is self and starved_ms > self.timeout_ms:
            _sim.wdt = None
            raise WatchdogReset("watchdog not fed for %d ms" % starved_ms)


class AdcBlock:
    """Samples every channel of the board in one call, as the real scanner would, from the
    panel's currents at the simulated time of each sample."""

    def __init__(self, board):
        self._gen = _sim.adcgen
        self._nch = len(board.CHANNELS)
        self._slot_us = board.ADC_SLOT_US
        self._free_ms = 0         # when the last scan's reads end (elapsed ms)

    def scan(self, buf, rounds):
        vt = _sim.vt
        t0 = vt.sim_begin()
        # The reads take time even where the scheduler is not charged for them: a scan
        # that follows another within the same simulated ms samples after it, not the
        # same instants again (the sampler scans a cycle at a time).
        now = vt.elapsed_ms()
        start = now if now >= self._free_ms else self._free_ms
        _sim.panel.advance_to(now)
        self._gen.fill(buf, rounds, start % 1000 * 1000, start // 1000)   # us: 2**30 in 18 min
        scan_us = rounds * self._nch * self._slot_us
        self._free_ms = start + (scan_us + 999) // 1000
        vt.sim_end(t0)
        if _sim.adc_read_us:
            vt.hold_us(rounds * self._nch * _sim.adc_read_us)    # the reads, one by one


def unique_id():
    return b"\x00sim\x00\x01"
