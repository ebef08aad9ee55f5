"""A charger behind its own contactor, opened only once the charger stopped drawing.
Imported only when a load has a feed_output."""

from micropython import const

from actuators import J1772_MIN_A

_IDLE_W = const(100)             # below this a charger's CT reads it as stopped


class FedCharger:
    """A charger (PilotCharger or evmqtt.MqttCharger) behind its own contactor. The contactor
    closes before any current is offered and opens only after the charger was told to stop
    and its draw fell to nothing (its CT), or open_delay_ms passed: the contacts break little
    or no current. safe() opens both at once: safety before wear."""

    def __init__(self, charger, contactor, clock, open_delay_ms, load=None):
        self.charger = charger
        self.contactor = contactor
        self._clock = clock
        self.open_delay_ms = open_delay_ms
        self._load = load           # its measured_w ends the wait early
        self._open_at = None
        self.amps = 0
        self.max_a = charger.max_a

    def set_amps(self, amps):
        charger = self.charger
        contactor = self.contactor
        if amps >= J1772_MIN_A:
            self._open_at = None
            contactor.set(True)
            charger.set_amps(amps)
        else:
            charger.set_amps(0)
            if contactor.is_on:
                clock = self._clock
                now = clock.ticks_ms()
                load = self._load
                if self._open_at is None:
                    self._open_at = clock.ticks_add(now, self.open_delay_ms)
                elif clock.ticks_diff(now, self._open_at) >= 0 or (
                        load is not None and 0 <= load.measured_w < _IDLE_W):
                    contactor.set(False)
                    self._open_at = None
        self.amps = charger.amps

    def apply(self, load):
        self.set_amps(load.setpoint_a if load.on else 0)

    def safe(self):
        self.charger.safe()
        self.contactor.safe()
        self._open_at = None
        self.amps = 0
