"""The firmware's settings: defaults for a typical installation, overridden per site.
(The schema, validation and flash persistence are the config module's job.)"""

DEFAULTS = {
    "panel_rating_a": 100,        # main breaker or service rating, per leg
    "volts": 120,                 # nominal leg voltage (line to neutral)
    "limit_w": 0,                 # installer setpoint; 0 means 80 % of the rating (NEC 220.70)
    "band_pct": 5,                # restore threshold this far below the setpoint
    "sample_period_ms": 1000,
    "control_period_ms": 1000,
    "window_cycles": 4,           # mains cycles per measurement window
    "stale_ms": 5000,             # an older measurement counts as invalid (fail safe)
    "supervisor_period_ms": 500,
    "loads": (
        # Shed first: the water heater's tank holds its heat; then the EV is throttled.
        {"name": "water_heater", "kind": "onoff", "priority": 2, "leg": "L1L2",
         "rated_w": 4500, "output": 0, "ct": "CT3", "min_on_s": 60, "min_off_s": 60},
        {"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2",
         "rated_w": 7680, "driver": "pilot", "max_a": 32, "ct": "CT4"},
    ),
}


def merged(overrides=None):
    cfg = dict(DEFAULTS)
    if overrides:
        for key in overrides:
            if key not in DEFAULTS:
                raise ValueError("unknown setting %r" % key)
            cfg[key] = overrides[key]
    return cfg


def setpoint_w(cfg):
    """The installer's limit in watts: explicit, or 80 % of the rating on both legs."""
    if cfg["limit_w"]:
        return cfg["limit_w"]
    return cfg["panel_rating_a"] * 2 * cfg["volts"] * 8 // 10
