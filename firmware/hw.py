"""Turns a board file into hardware objects: the ADC scanner, contactor signals, feedback
inputs, the J1772 pilot, the status LED, the watchdog and the board's id. The only firmware
module that touches `machine`; it is handed the module, so the simulator can hand it another."""

import micropython
from micropython import const

from actuators import PAUSE_DUTY_U16   # J1772's pause: one home, with the pilot's duty

_RESET_NAMES = (
    ("PWRON_RESET", "power-on"),
    ("HARD_RESET", "hard reset"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep sleep"),
    ("SOFT_RESET", "soft reset"),
)


@micropython.native
def _scan(reads, buf, rounds: int, nch: int):
    # Channels in turn, round after round: the sample of channel c in round r is taken
    # (r * nch + c) ADC slots after the first, which the meter's phase correction expects.
    i = 0
    for _ in range(rounds):
        for c in range(nch):
            buf[i] = reads[c]() >> 4  # read_u16 is scaled to 16 bits; keep the 12 real ones
            i += 1


class AdcScanner:
    """Samples every channel of the board into an interleaved buffer."""

    def __init__(self, adcs):
        self._reads = tuple(adc.read_u16 for adc in adcs)

    def scan(self, buf, rounds):
        _scan(self._reads, buf, rounds, len(self._reads))


class Hardware:
    def __init__(self, machine, board, scanner, outputs, feedback, pilot, led):
        self.machine = machine
        self.board = board
        self.scanner = scanner
        self.outputs = outputs      # one machine.Signal per contactor, True = coil energised
        self.feedback = feedback    # one Signal per contactor (aux contact closed) or None
        self.pilot = pilot          # machine.PWM on the J1772 pilot, or None
        self.led = led
        self.wdt = None

    def start_watchdog(self, timeout_ms):
        # Once started the ESP32 watchdog cannot be stopped: only the supervisor calls this.
        self.wdt = self.machine.WDT(timeout=timeout_ms)
        return self.wdt

    def stretch_watchdog(self, timeout_ms):
        """A started watchdog cannot be stopped: when the controller stops for maintenance
        it gets `timeout_ms` and one feed, so a board left stopped resets itself after that
        and runs again. Nothing to do if it was never started (safe mode)."""
        if self.wdt is not None:
            self.wdt = self.machine.WDT(timeout=timeout_ms)
            self.wdt.feed()

    def all_outputs_safe(self):
        """Every contactor coil released and the pilot at steady +12 V (the vehicle pauses),
        whether or not a load is bound to it. Safe to call any number of times."""
        for signal in self.outputs:
            signal.off()
        if self.pilot is not None:
            self.pilot.duty_u16(PAUSE_DUTY_U16)

    def unique_id(self):
        """The chip's id (the MQTT client id is made from it); one zero byte on a port
        without one."""
        uid = getattr(self.machine, "unique_id", None)
        return uid() if uid is not None else b"\0"

    def reset_cause(self):
        cause = self.machine.reset_cause()
        for const_name, name in _RESET_NAMES:
            if getattr(self.machine, const_name, None) == cause:
                return name
        return "unknown (%d)" % cause


def _output(machine, spec):
    invert = spec.get("invert", False)
    # Level first, then direction (Pin sets the value before it enables the driver), so a
    # contactor coil never sees a pulse at boot, whatever the driver's polarity.
    pin = machine.Pin(spec["pin"], machine.Pin.OUT, value=1 if invert else 0)
    return machine.Signal(pin, invert=invert)


def build(board, machine):
    """Builds the Hardware of `board` (a board module) on `machine` (the machine module)."""
    channels = board.CHANNELS
    block = getattr(machine, "AdcBlock", None)
    if block is not None:
        # A port with a block (DMA-style) ADC reader; the simulator provides one.
        scanner = block(board)
    else:
        atten = machine.ADC.ATTN_11DB
        scanner = AdcScanner([machine.ADC(machine.Pin(ch["pin"]), atten=atten)
                              for ch in channels])
    outputs = [_output(machine, spec) for spec in board.OUTPUTS]
    feedback = []
    for spec in getattr(board, "FEEDBACK", ()):
        pull = machine.Pin.PULL_UP if spec.get("pull_up") else None
        pin = machine.Pin(spec["pin"], machine.Pin.IN, pull)
        feedback.append(machine.Signal(pin, invert=spec.get("invert", False)))
    pilot = None
    spec = getattr(board, "PILOT", None)
    if spec:
        # Steady +12 V (no PWM) tells the vehicle not to charge until the firmware says.
        pin = machine.Pin(spec["pin"], machine.Pin.OUT, value=1)
        pilot = machine.PWM(pin, freq=spec["freq_hz"], duty_u16=PAUSE_DUTY_U16)
    led = None
    spec = getattr(board, "STATUS_LED", None)
    if spec:
        led = _output(machine, spec)
    return Hardware(machine, board, scanner, outputs, feedback, pilot, led)
