"""What the simulated devices in tools/ share, so each of them holds only its maker's dialect:
the MQTT client's run loop and its thread, the switches tests use to make a device go quiet or
drop off the broker, and the command line that runs one device until its time is up."""

import argparse
import threading
import time

from mqttclient import Mqtt


class Every:
    """A period's deadlines, kept on a schedule (late passes do not shift the next one):
    due(now) is true once per period_s, the first time at first_at."""

    def __init__(self, period_s, first_at):
        self.period_s = period_s
        self.at = first_at

    def due(self, now):
        if now < self.at:
            return False
        self.at += self.period_s
        return True


class DeviceClient(Mqtt):
    """A device on the broker: run(seconds) says hello(), then calls step(now) every pass_s
    until the time is up or stop is set, then goodbye(). mutex guards what deliver(), which
    runs in the reader thread, shares with step()."""

    pass_s = 0.05                # how often step() looks at the clock: well inside any period

    def __init__(self, host, port, client_id):
        self.stop = threading.Event()
        self.mutex = threading.Lock()
        # No keepalive: a simulated device leaves the broker only when a test says so.
        super().__init__(host, port, client_id, keepalive_s=0)

    def hello(self):
        """Subscribe and publish what the device says when it connects."""

    def step(self, now):
        """One pass of the device's own clock: what it does unasked."""

    def goodbye(self):
        """What the device publishes when its time is up (not when it fails)."""

    def run(self, seconds):
        self.hello()
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stop.is_set():
            self.step(time.monotonic())
            self.stop.wait(self.pass_s)
        self.goodbye()

    def start(self, seconds=3600):
        t = threading.Thread(target=self.run, args=(seconds,), daemon=True)
        t.start()
        return t


class SimDevice(DeviceClient):
    """A maker's device whose faults tests drive: silent() (it stops talking; its dialect
    checks _quiet before it answers or reports), resume(), offline() (its last will, as the
    broker publishes it when a connection is lost), online()."""

    def __init__(self, host, port, client_id):
        self._quiet = False
        super().__init__(host, port, client_id)

    def publish_online(self):
        """The dialect's retained word that the device is there."""
        raise NotImplementedError

    def publish_offline(self):
        """The dialect's last will: what the broker publishes when the device drops off."""
        raise NotImplementedError

    def silent(self):
        self._quiet = True

    def resume(self):
        self._quiet = False

    def offline(self):
        self._quiet = True
        self.publish_offline()

    def online(self):
        self.publish_online()
        self._quiet = False


def run_from_command_line(doc, add_options, build, argv=None):
    """The simulator's command line: --broker HOST:PORT, then add_options(parser)'s (one of
    them --seconds); build(host, port, args) makes the device, which runs until that time is
    up. doc's first line is the description. Returns the exit status."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--broker", required=True)
    add_options(ap)
    args = ap.parse_args(argv)
    host, _, port = args.broker.rpartition(":")
    dev = build(host, int(port), args)
    try:
        dev.run(args.seconds)
    finally:
        dev.close()
    return 0
