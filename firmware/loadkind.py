"""What a load is and what its actuator can do: the one description config, the controller,
the build, the console and the network read."""

try:
    from micropython import const
except ImportError:          # CPython, for tools that read config's checks
    def const(x):
        return x

KIND_ONOFF = const(0)        # behind a contactor
KIND_MODULATED = const(1)    # takes a setpoint in whole amps (EV charger, ...)
KIND_NEVER = const(2)        # never shed; listed so its size and leg are known
KIND_NAMES = ("onoff", "modulated", "never")   # config's names for them, in that order


def kind(name):
    """The kind a config name ("onoff", "modulated", "never") stands for."""
    return KIND_NAMES.index(name)


def takes_amps(actuator):
    """True for an actuator that takes a current (a charger: set_amps(), amps), False for one
    that switches (a contactor: set(), is_on). A LoadGate answers for the actuator it wraps."""
    return hasattr(actuator, "set_amps")
