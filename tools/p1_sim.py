#!/usr/bin/env python3
"""A DSMR / P1 smart meter behind DSMR-reader, simulated in CPython on the project's MQTT
client: it publishes DSMR-reader's JSON telegram (dsmr-reader.readthedocs.io, "MQTT", the
telegram as JSON; default topic `dsmr/json`) at the meter's own cadence: every 1 s (DSMR 5)
or 10 s (DSMR 4). The firmware reads it with mains_p1.py.

A telegram: {"id", "timestamp", "electricity_delivered_1", "electricity_returned_1",
"electricity_delivered_2", "electricity_returned_2", "electricity_currently_delivered",
"electricity_currently_returned" (kW, 3 decimals as the meter gives them, each >= 0),
"phase_currently_delivered_l1..l3", "phase_currently_returned_l1..l3" (kW),
"phase_voltage_l1..l3" (V)}.

    tools/p1_sim.py --broker HOST:PORT [--topic dsmr/json] [--period 1|10] [--w W]
        [--seconds S]

Tests give it the simulated panel's reading through set_reading(w, legs_w) and drive
silent()/resume()."""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqttclient import Mqtt  # noqa: E402


def telegram(seq, w, legs_w=(), kwh=(0.0, 0.0, 0.0, 0.0)):
    """DSMR-reader's JSON telegram for a mains reading of w W (import positive)."""
    t = time.gmtime()
    d = {"id": seq, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", t),
         "electricity_delivered_1": round(kwh[0], 3), "electricity_returned_1": round(kwh[1], 3),
         "electricity_delivered_2": round(kwh[2], 3), "electricity_returned_2": round(kwh[3], 3),
         "electricity_currently_delivered": round(max(w, 0) / 1000, 3),
         "electricity_currently_returned": round(max(-w, 0) / 1000, 3)}
    for i, lw in enumerate(legs_w):
        n = "l%d" % (i + 1)
        d["phase_currently_delivered_" + n] = round(max(lw, 0) / 1000, 3)
        d["phase_currently_returned_" + n] = round(max(-lw, 0) / 1000, 3)
        d["phase_voltage_" + n] = 230.0
    return json.dumps(d)


class P1Sim:
    """Publishes a telegram every period_s from the reading last set (a thread)."""

    def __init__(self, host, port, topic="dsmr/json", period_s=1, client_id="p1sim"):
        self.topic = topic
        self.period_s = period_s
        self.client = Mqtt(host, port, client_id, keepalive_s=0)
        self.w = 0
        self.legs_w = ()
        self.sent = 0
        self._silent = False
        self._stop = threading.Event()
        self._thread = None

    def set_reading(self, w, legs_w=()):
        self.w = int(w)
        self.legs_w = tuple(int(x) for x in legs_w)

    def silent(self):
        self._silent = True

    def resume(self):
        self._silent = False

    def publish_once(self):
        self.sent += 1
        self.client.publish(self.topic, telegram(self.sent, self.w, self.legs_w))

    def _loop(self):
        nxt = time.monotonic()
        while not self._stop.is_set():
            if not self._silent:
                self.publish_once()
            nxt += self.period_s
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="a DSMR / P1 meter behind DSMR-reader over MQTT")
    ap.add_argument("--broker", required=True, help="HOST:PORT")
    ap.add_argument("--topic", default="dsmr/json")
    ap.add_argument("--period", type=int, choices=(1, 10), default=1,
                    help="1: DSMR 5, 10: DSMR 4")
    ap.add_argument("--w", type=int, default=1500, help="the mains reading, W (import +)")
    ap.add_argument("--seconds", type=float, default=0, help="0: until interrupted")
    a = ap.parse_args(argv)
    host, _, port = a.broker.rpartition(":")
    sim = P1Sim(host or "127.0.0.1", int(port), a.topic, a.period)
    sim.set_reading(a.w)
    sim.start()
    try:
        t0 = time.monotonic()
        while not a.seconds or time.monotonic() - t0 < a.seconds:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    sim.close()


if __name__ == "__main__":
    main()
