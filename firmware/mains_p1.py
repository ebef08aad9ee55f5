"""A DSMR / P1 smart meter as the mains meter (config mains_meter_dialect "p1"), read through
DSMR-reader's MQTT JSON telegram (dsmr-reader.readthedocs.io, "MQTT": the telegram as JSON on
one topic, default `dsmr/json`): `electricity_currently_delivered` and
`electricity_currently_returned` in kW (both >= 0: the meter reports import and export
apart), per leg `phase_currently_delivered_l1..l3` / `phase_currently_returned_l1..l3`. The
device is that topic. The meter sends a telegram every 1 s (DSMR 5) or 10 s (DSMR 4).
Imported only when configured."""

import json

from meterwatts import whole_w


def topics(device):
    return (device,)


def _kw(d, key):
    v = d.get(key)
    if not isinstance(v, (int, float)) or v < 0:    # a bool is no int here (MicroPython)
        raise ValueError("%s is not a kW figure >= 0: %r" % (key, v))
    return v


def parse(topic, payload):
    """The mains power in whole W (import positive) from a telegram; None when it carries no
    current power (DSMR-reader's telegram without those fields); ValueError when implausible."""
    try:
        d = json.loads(payload)
    except ValueError:
        raise ValueError("telegram is not JSON")
    if not isinstance(d, dict):
        raise ValueError("telegram is not a JSON object")
    if "electricity_currently_delivered" not in d and "electricity_currently_returned" not in d:
        return None
    kw = _kw(d, "electricity_currently_delivered") - _kw(d, "electricity_currently_returned")
    return whole_w(kw * 1000, "electricity_currently_delivered - returned")


def legs(payload):
    """Per-leg W (import positive) from a telegram, a tuple of the legs it names, or ()."""
    d = json.loads(payload)
    out = []
    for n in ("l1", "l2", "l3"):
        k = "phase_currently_delivered_" + n
        if k not in d:
            break
        out.append(whole_w((_kw(d, k) - _kw(d, "phase_currently_returned_" + n)) * 1000, k))
    return tuple(out)
