"""The panel's rules, pure: its shape (legs), its rating and the 80 % setpoint, the cap a big
uncontrolled load puts on the target, and the checks of their figures. limits.py (the limit
sources), shedsetup.py (the set-up of the limits and the shed objects) and config.py (via
limits, which re-exports them) read them. A module of its own so that shedsetup, imported by
limits to build it and dropped after, need not import limits back: no import cycle."""

# Pure ints, no I/O.
# Panel shapes (config "system"): "split" 120/240 V, legs L1 L2; "single", e.g. 230 V, leg L1.
# A three-phase 230/400 V shape would be a third system with three legs here, leg names
# L3 and L1L2L3 in LEGS, and 400 V (not 2 x 230 V) across two legs in leg_volts():
# docs/shed.md, "Panel shapes".

try:
    from micropython import const
except ImportError:          # CPython, for tools that read config's checks
    def const(x):
        return x

NO_LIMIT = const(0x20000000)   # "no limit" in W or mA; 2**29 is still a small int on the ESP32
SETPOINT_PCT = 80   # NEC 220.70 / 750: the setpoint is a continuous load, at most 80 % of rating
SYSTEMS = ("split", "single")
_SYSTEM_LEGS = (2, 1)
LEGS = ("L1", "L2", "L1L2")    # where a load or a CT sits: one leg, or both (a 240 V load)


def check_int(name, value, lo, hi, unit):
    """value if it is an int in lo..hi, else ValueError with one readable line."""
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or value > hi:
        raise ValueError("error: %s must be an int in %d..%d %s, got %r" % (name, lo, hi, unit, value))
    return value


def legs(system):
    """How many legs (hot conductors) a panel of this system has."""
    if system not in SYSTEMS:
        raise ValueError("error: system must be one of %s, got %r" % (SYSTEMS, system))
    return _SYSTEM_LEGS[SYSTEMS.index(system)]


def rating_w(rating_a, n_legs, volts):
    """The panel's rating in W: rating_a on every leg, volts line to neutral."""
    return rating_a * n_legs * volts


def max_setpoint_a(rating_a):
    """The highest setpoint in amps per leg."""
    return rating_a * SETPOINT_PCT // 100


def max_setpoint_w(rating_a, n_legs, volts):
    """The highest setpoint in W."""
    return rating_w(rating_a, n_legs, volts) * SETPOINT_PCT // 100


def leg_volts(leg, n_legs, volts):
    """Volts across a load on `leg`: one leg to neutral, or L1L2's two legs in series (240 V on
    a 120/240 V panel). ValueError if the panel has no such leg."""
    if n_legs == 1 and leg != "L1":
        raise ValueError("a single-phase system has only leg L1")
    return volts * 2 if leg == "L1L2" else volts


def uncontrolled_caps(rating_a, n_legs, volts, loads):
    """(W, mA per leg): the highest target that still leaves the panel at or under 100 % of its
    rating when the biggest of `loads` ((rated_w, leg) pairs, never shed) starts by surprise."""
    big_w = 0
    big_ma = 0
    for rated_w, leg in loads:
        ma = rated_w * 1000 // leg_volts(leg, n_legs, volts)
        big_w = rated_w if rated_w > big_w else big_w
        big_ma = ma if ma > big_ma else big_ma
    return max(0, rating_w(rating_a, n_legs, volts) - big_w), max(0, rating_a * 1000 - big_ma)
