"""Wi-Fi station mode for the network side (netsetup.py builds it for MQTT, app.py for a
status page without MQTT, where the port has a `network` module and an SSID is set; on the
unix port the network is simply there and this module is never loaded). Behind the same
rule as the MQTT link: nothing here waits."""

import asyncio

from backoff import Backoff, describe_error


def build(cfg, clock, log, network=None):
    """The Wifi for these settings, or None where there is nothing to join (no SSID, or a
    port whose network is simply there)."""
    if network is None and cfg["wifi_ssid"]:
        try:
            import network
        except ImportError:  # unix port
            network = None
    if network is None:
        return None
    return Wifi(network, cfg["wifi_ssid"], cfg["wifi_password"], clock, log=log)


class Wifi:
    """Station mode, kept up by its own task: associate, wait with a deadline, back off on
    failure, watch for loss. `network` is the network module, or None where the network is
    simply there (unix port): then `up` is always True and run() only beats its heart."""

    def __init__(self, network, ssid, password, clock, backoff=None, connect_timeout_ms=20000,
                 check_ms=1000, log=print):
        self._clock = clock
        self._ssid = ssid
        self._password = password
        self._backoff = backoff or Backoff(2000, 120000)
        self.connect_timeout_ms = connect_timeout_ms
        self.check_ms = check_ms
        self._log = log
        self.heartbeat_ms = None
        self.attempts = 0
        self.losses = 0
        self._wlan = None
        if network is None:
            self.up = True
            self.state = "wired"
            return
        self.up = False
        self.state = "down"
        self._wlan = network.WLAN(network.STA_IF)

    async def run(self):
        clock = self._clock
        wlan = self._wlan
        if wlan is None:
            while True:
                self.heartbeat_ms = clock.ticks_ms()
                await asyncio.sleep_ms(self.check_ms)
        wlan.active(True)
        try:
            wlan.config(reconnects=0)     # this task owns the retries and their backoff
        except Exception:   # not every port knows the option
            pass
        while True:
            self.heartbeat_ms = clock.ticks_ms()
            if wlan.isconnected():
                if not self.up:
                    self.up = True
                    self.state = "up"
                    self._backoff.reset()
                    self._log("wifi: connected to %s" % self._ssid)
                await asyncio.sleep_ms(self.check_ms)
                continue
            if self.up:
                self.up = False
                self.losses += 1
                self._log("wifi: lost %s" % self._ssid)
            self.state = "connecting"
            self.attempts += 1
            try:
                wlan.connect(self._ssid, self._password)   # returns at once; the driver associates
            except OSError as e:
                self._log("wifi: connect: %s" % describe_error(e))
            t0 = clock.ticks_ms()
            while not wlan.isconnected() and \
                    clock.ticks_diff(clock.ticks_ms(), t0) < self.connect_timeout_ms:
                self.heartbeat_ms = clock.ticks_ms()
                await asyncio.sleep_ms(250)
            if wlan.isconnected():
                continue
            try:
                wlan.disconnect()
            except OSError:
                pass
            delay = self._backoff.next_ms()
            self.state = "waiting"
            self._log("wifi: %s not joined; retry in %d ms" % (self._ssid, delay))
            t0 = clock.ticks_ms()
            while clock.ticks_diff(clock.ticks_ms(), t0) < delay:
                self.heartbeat_ms = clock.ticks_ms()
                await asyncio.sleep_ms(500)
