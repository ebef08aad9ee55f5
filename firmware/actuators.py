"""Drives what the controller decided: contactor coils and the EV charger's current."""

from micropython import const

PAUSE_DUTY_U16 = const(65535)    # steady +12 V: the vehicle must not draw (hw too)
J1772_MIN_A = const(6)          # below 6 A a J1772 charger must pause (chargers over MQTT too)


def j1772_duty_u16(amps):
    """Pilot duty (of 65535) that offers `amps` under SAE J1772: 6..51 A: duty % = A / 0.6;
    51..80 A: duty % = A / 2.5 + 64. Whole amps; below 6 A means pause."""
    if amps < J1772_MIN_A:
        return PAUSE_DUTY_U16
    if amps <= 51:
        return (amps * 65535 + 30) // 60   # A / 0.6 percent of 65535, rounded
    if amps > 80:
        amps = 80
    return ((amps * 40 + 6400) * 65535 + 5000) // 10000   # (A/2.5 + 64) %, in basis points


class Contactor:
    """A contactor coil behind a Signal (polarity lives in the Signal): logic says on or off.
    Counts operations since boot (wear.py keeps the lifetime total); `feedback` is the
    auxiliary contact's Signal (True = contacts closed) or None."""

    def __init__(self, signal, feedback=None):
        self._signal = signal
        self.feedback = feedback
        self.is_on = False
        self.ops = 0
        signal.off()

    def set(self, on):
        on = bool(on)
        if on != self.is_on:
            self._signal.value(on)
            self.is_on = on
            self.ops += 1

    def apply(self, load):
        self.set(load.on)

    def safe(self):
        self._signal.off()
        self.is_on = False


class PilotCharger:
    """An EVSE whose pilot the board generates: the charger's current is the pilot duty."""

    def __init__(self, pwm, max_a):
        self._pwm = pwm
        self.max_a = max_a
        self.amps = -1
        self.set_amps(0)

    def set_amps(self, amps):
        amps = int(amps)
        if amps > self.max_a:
            amps = self.max_a        # never above the charger's or the circuit's rating
        if amps < J1772_MIN_A:
            amps = 0
        if amps != self.amps:
            self._pwm.duty_u16(j1772_duty_u16(amps))
            self.amps = amps

    def apply(self, load):
        self.set_amps(load.setpoint_a if load.on else 0)

    def safe(self):
        self._pwm.duty_u16(PAUSE_DUTY_U16)
        self.amps = 0
