"""One home for what a mains meter's power may be (the mains_<dialect> modules): a number,
not a bool, inside the profile's range for `w` (+-500 kW), in whole W. Anything else is an
implausible reading: ValueError with a one-line reason."""

from micropython import const

MAX_W = const(500000)            # the profile's range for a mains reading (docs/profile.md)


def whole_w(value, what):
    """`value` (a meter's W, int or float) as whole W, rounded half away from zero."""
    # MicroPython's bool is no int to isinstance: true/false from JSON are refused here too.
    if not isinstance(value, (int, float)):
        raise ValueError("%s is not a number: %r" % (what, value))
    if not -MAX_W <= value <= MAX_W:     # also refuses nan (every comparison is false)
        raise ValueError("%s out of range (+-%d W): %r" % (what, MAX_W, value))
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)
