"""The stand-in board's `machine`: what the ESP32 port offers the firmware, on the unix
port, in real time. Pins and PWM keep their levels in `levels` and `duty`; the ADC returns a
mid-rail bias plus a 60 Hz sine per pin set by inject() (a clamp-meter bench in software);
reset() ends the process and the stand-in's loop boots it again, as a board would. What it
shares with the simulator's machine is in tools/panelsim/machinecore.py."""

import math
import os
import sys

from panelsim.machinecore import (PWRON_RESET, HARD_RESET, WDT_RESET,  # noqa: F401
                                  DEEPSLEEP_RESET, SOFT_RESET, Pin as _Pin, ADC as _ADC,
                                  Signal, idle)

levels = {}        # pin -> level of every output pin
duty = {}          # pin -> PWM duty_u16
wdt_timeouts = []  # timeout of every WDT() made, in order
_amp = {}          # pin -> sine peak in ADC counts (of 4096)
_slot = [0]        # ADC conversions so far: each takes _SLOT_US, like the real scan
_SLOT_US = 35
_HZ = 60


def _bench_from_env():
    # STANDIN_INJECT="36=1970,35=400": the signals on the bench when the board powers up.
    for item in (os.getenv("STANDIN_INJECT") or "").split(","):
        if "=" in item:
            pin, peak = item.split("=")
            _amp[int(pin)] = int(peak)


def inject(pin, peak_counts):
    """A sine of `peak_counts` (12-bit counts) on an ADC pin, from now on."""
    _amp[pin] = peak_counts


def reset_cause():
    return PWRON_RESET


def reset():
    sys.exit(0)     # the stand-in's loop starts a fresh process: boot.py, main.py


def soft_reset():
    sys.exit(0)


def unique_id():
    return b"standin"


def freq(hz=None):
    return 240000000


class Pin(_Pin):
    def _drive(self, level):
        levels[self.id] = level


class PWM:
    def __init__(self, pin, freq=1000, duty_u16=0):
        self._pin = pin
        self._freq = freq
        self.duty_u16(duty_u16)

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return duty[self._pin.id]
        duty[self._pin.id] = d

    def deinit(self):
        self.duty_u16(65535)


class ADC(_ADC):
    def read_u16(self):
        n = _slot[0]
        _slot[0] = n + 1
        peak = _amp.get(self.pin.id, 0)
        v = 2048
        if peak:
            v += int(peak * math.sin(2 * math.pi * _HZ * n * _SLOT_US / 1e6))
        return v << 4


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout_ms = timeout
        self.feeds = 0
        wdt_timeouts.append(timeout)

    def feed(self):
        self.feeds += 1


_bench_from_env()
