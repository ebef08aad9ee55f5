"""A Shelly Gen2+ energy meter as the panel's mains sensor (config mains_meter_dialect
"shelly"; docs/profile.md, "Shelly Gen2+ energy meters"), on Shelly's published MQTT API: with
"generic status update over MQTT" on, every change of a component's status is published
whole on `<prefix>/status/<component>:<id>`. Two components read:

- `em:0` (Pro 3EM, 3EM Gen3 in the triphase profile): `total_act_power`, the three phases'
  active power summed, signed (export negative);
- `em1:<n>` (Pro EM, EM Gen3, a 3EM in the monophase profile: one channel each):
  `act_power` of the channel on the mains.

The device is the meter's MQTT topic prefix for em:0 (`shellypro3em-<mac>`), or
`<prefix>/em1:<n>` for one em1 channel. A status that names errors (`errors`, or a phase's
`<p>_errors`: a CT out of range, a failed power meter) is implausible. Imported only when
configured."""

import json

from meterwatts import whole_w


def _split(device):
    """(topic prefix, component) of a device: 'p' -> ('p', 'em:0'); 'p/em1:1' -> ('p', 'em1:1')."""
    i = device.rfind("/")
    if i > 0 and device[i + 1:].startswith("em1:") and device[i + 5:].isdigit():
        return device[:i], device[i + 1:]
    return device, "em:0"


def topics(device):
    prefix, comp = _split(device)
    return (prefix + "/status/" + comp,)


def parse(topic, payload):
    """Mains power in whole W (import positive) from a status message; None for another
    topic; ValueError for a status that is not a plausible reading."""
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode()
    i = topic.rfind("/status/")
    if i < 0:
        return None
    comp = topic[i + 8:]
    em1 = comp.startswith("em1:")
    if not em1 and comp != "em:0":
        return None
    try:
        st = json.loads(payload)
    except Exception:  # untrusted bytes: whatever the parser objects to
        raise ValueError("shelly %s: not JSON" % comp)
    if not isinstance(st, dict):
        raise ValueError("shelly %s: not a status object" % comp)
    for key in ("errors", "a_errors", "b_errors", "c_errors", "n_errors"):
        if st.get(key):
            raise ValueError("shelly %s: meter reports %s %s" % (comp, key, st[key]))
    key = "act_power" if em1 else "total_act_power"
    if key not in st:
        raise ValueError("shelly %s: no %s" % (comp, key))
    return whole_w(st[key], "shelly %s %s" % (comp, key))
