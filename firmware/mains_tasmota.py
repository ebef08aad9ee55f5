"""A Tasmota energy meter as the panel's mains sensor (config mains_meter_dialect "tasmota";
docs/profile.md, "Tasmota energy meters"), on Tasmota's published MQTT API with its default
FullTopic %prefix%/%topic%/: every TelePeriod `tele/<topic>/SENSOR` carries
{"ENERGY": {"Power": W, ...}}; a meter with several channels or phases (an SDM630 or an
ADE7880 3-phase board) gives a list, summed here for the mains. Import positive: a
bidirectional meter reports export negative (a single-phase HLW8012/BL0942 plug cannot, and
is no mains meter). The device is Tasmota's Topic. Imported only when configured."""

import json

from meterwatts import whole_w


def topics(device):
    return ("tele/" + device + "/SENSOR",)


def parse(topic, payload):
    """Mains power in whole W from a SENSOR message; None for another topic or a SENSOR
    without ENERGY (a device's other sensors); ValueError for an implausible reading."""
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode()
    if not topic.startswith("tele/") or not topic.endswith("/SENSOR"):
        return None
    try:
        d = json.loads(payload)
    except Exception:  # untrusted bytes: whatever the parser objects to
        raise ValueError("tasmota SENSOR: not JSON")
    if not isinstance(d, dict):
        raise ValueError("tasmota SENSOR: not an object")
    energy = d.get("ENERGY")
    if energy is None:
        return None
    if not isinstance(energy, dict) or "Power" not in energy:
        raise ValueError("tasmota SENSOR: ENERGY without Power")
    w = energy["Power"]
    if isinstance(w, list):
        if not w:
            raise ValueError("tasmota SENSOR: ENERGY.Power is an empty list")
        total = 0
        for p in w:
            whole_w(p, "tasmota ENERGY.Power phase")    # each phase a plausible number
            total += p                   # rounded once, summed: no W lost per phase
        return whole_w(total, "tasmota ENERGY.Power")
    return whole_w(w, "tasmota ENERGY.Power")
