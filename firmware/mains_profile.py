"""The mains meter's default dialect (config mains_meter_dialect "profile"): a sensor of the
device profile (docs/profile.md) publishing `pcp/<id>/reading` {"seq", "valid", "w"}. A
reading not valid, `w` not an int within +-500 kW, or a seq going back (but 1: the sensor
restarted) is implausible. Imported only when configured, as every mains_<dialect> is."""

import json

from micropython import const

_MAX_W = const(500000)
_last_seq = {}                   # topic -> the last plausible seq (one mains meter: one entry)


def topics(device):
    return ("pcp/" + device + "/reading",)


def parse(topic, payload):
    """The mains power in whole W (import positive); ValueError with a one-line reason for an
    implausible reading."""
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode()
    try:
        d = json.loads(payload)
    except ValueError:
        raise ValueError("reading is not JSON")
    if not isinstance(d, dict):
        raise ValueError("reading is not a JSON object")
    if d.get("valid") is not True:
        raise ValueError("reading not valid")
    seq = d.get("seq")
    w = d.get("w")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("seq is not an int: %r" % (seq,))
    if not isinstance(w, int) or isinstance(w, bool) or not -_MAX_W <= w <= _MAX_W:
        raise ValueError("w is not an int within +-%d W: %r" % (_MAX_W, w))
    last = _last_seq.get(topic)
    if last is not None and seq <= last and seq != 1:
        raise ValueError("seq went back: %d after %d" % (seq, last))
    _last_seq[topic] = seq
    return w
