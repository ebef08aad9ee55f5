"""What the two host `machine` layers share, the simulator's (panelsim.machine) and the
stand-in board's (tools/standin/machine.py): the ESP32 port's reset causes, and Pin, Signal
and ADC as the firmware sees them. Each layer subclasses Pin to say where a level goes (the
simulated panel, or the stand-in's table) and has its own PWM: what a duty drives is all
there is to one, and a subclass would cost the simulator's heap more than the lines saved."""

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.mode = None
        self._level = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        # As on the ESP32: the level is set before the output driver is enabled.
        if value is not None:
            self._level = 1 if value else 0
        elif pull == Pin.PULL_UP:
            self._level = 1
        if mode != -1:
            self.mode = mode
        if self.mode == Pin.OUT:
            self._drive(self._level)

    def value(self, v=None):
        if v is None:
            return self._read()
        self._level = 1 if v else 0
        if self.mode == Pin.OUT:
            self._drive(self._level)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)

    def _drive(self, level):
        # An output's level changed (or it became an output): the layer's wiring.
        pass

    def _read(self):
        return self._level


class Signal:
    def __init__(self, pin, invert=False):
        self._pin = pin
        self._invert = invert

    def value(self, v=None):
        if v is None:
            return self._pin.value() ^ self._invert
        self._pin.value(bool(v) ^ self._invert)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin, atten=ATTN_11DB):
        self.pin = pin


def idle():
    pass
