"""Building the controller's objects: the checks on a Load's, the Limits' and the Controller's
settings and their fields, with what each field means. Their constructors import this module; the app drops it
once the controller is built, so this code is not in RAM while it runs."""

import panelrules
from panelrules import LEGS, NO_LIMIT, check_int
from loadkind import KIND_MODULATED, KIND_NEVER, KIND_ONOFF


def init_load(load, name, kind, priority, leg, rated_w, volts, min_on_s, min_off_s, max_ops_per_h,
              min_a, max_a, ramp_step_a, resume_pause_s, response_s):
    """Load.__init__'s checks and fields (its defaults are in shed.py)."""
    if kind not in (KIND_ONOFF, KIND_MODULATED, KIND_NEVER):
        raise ValueError("error: kind must be KIND_ONOFF, KIND_MODULATED or KIND_NEVER, got %r" % (kind,))
    if leg not in LEGS:
        raise ValueError("error: leg must be 'L1', 'L2' or 'L1L2', got %r" % (leg,))
    load.name = name
    load.kind = kind
    load.priority = check_int("priority", priority, 0, 1000, "")
    load.leg = leg
    load.rated_w = check_int("rated_w", rated_w, 0, 100000, "W")
    load.volts = check_int("volts", volts, 50, 480, "V")
    load.min_on_ms = check_int("min_on_s", min_on_s, 0, 86400, "s") * 1000
    load.min_off_ms = check_int("min_off_s", min_off_s, 0, 86400, "s") * 1000
    load.max_ops_per_h = check_int("max_ops_per_h", max_ops_per_h, 2, 3600, "/h")
    load.min_a = check_int("min_a", min_a, 0, 80, "A")
    load.max_a = check_int("max_a", max_a, max(min_a, 1), 80, "A")
    load.ramp_step_a = check_int("ramp_step_a", ramp_step_a, 1, 80, "A")
    load.resume_pause_ms = check_int("resume_pause_s", resume_pause_s, 0, 86400, "s") * 1000
    if response_s is None:
        response_s = 5 if kind == KIND_MODULATED else 2
    load.response_ms = check_int("response_s", response_s, 0, 600, "s") * 1000
    load.on_l1 = leg != "L2"
    load.on_l2 = leg != "L1"
    # Per-load constants the restore step reads on every update, worked out once here.
    load._floor_w = load.min_a * load.volts       # a modulated load at its floor
    load._off_ms = load.min_off_ms                # off at least this long before a restore
    if kind == KIND_MODULATED:
        load._off_ms = max(load.min_off_ms, load.resume_pause_ms)
        load._on_a = load.min_a if load.min_a > 0 else load.ramp_step_a
        load._on_w = load._on_a * load.volts
    else:
        load._on_a = 0                            # setpoint of a restore from off
        load._on_w = load.rated_w                 # ... and the draw it adds, in W
    load._on_ma = load._on_w * 1000 // load.volts   # ... and in mA on each leg it sits on
    # Commanded state (the app drives outputs from these after each update).
    load.on = kind == KIND_NEVER
    load.setpoint_a = 0
    # Input: actual draw from the load's own CT or feedback, -1 when unknown.
    load.measured_w = -1
    # Set by Controller.set_uncontrollable (welded contactor, silent charger).
    load.uncontrollable = False
    # Telemetry.
    load.switch_ops = 0      # on/off transitions (EV: pause/resume)
    load.adjust_ops = 0      # setpoint changes while running
    load.forced_ops = 0      # sheds that overrode min_on to hold the limit
    # Set by export.Soaker: W of export it may soak beyond its own demand (0: none).
    load.soak_w = 0
    load._soak_ms = 0        # ticks of the last soak start or end
    # Private state.
    load._ops_t = [0] * load.max_ops_per_h   # ring of switching times, last hour
    load._ops_head = 0
    load._ops_n = 0
    load.switched_ms = 0     # ticks of the last on/off transition (the controller's)
    load._changed_ms = 0     # last command change of any kind
    load._cmd_w = 0          # draw the command allows
    load._prev_cmd_w = 0     # ... and before the last change
    load._up = False         # last change raised the command
    load._act_w = 0          # this update: estimated draw now
    load._proj_w = 0         # this update: projected draw once commands took effect
    load._free_w = 0         # restore step: what lower-priority loads could free, W
    load._free1 = 0          # ... and mA on L1, L2
    load._free2 = 0


def init_limits(lim, setpoint_w, setpoint_a, volts, band_pct, rating_a, big_uncontrolled_w,
                big_uncontrolled_leg, clock, system, duty=False):
    """Limits.__init__'s checks and fields (its defaults are in limits.py); the rules they
    apply are panelrules.py's."""
    lim.volts = check_int("volts", volts, 50, 480, "V")
    lim.legs = panelrules.legs(system)
    lim.band_pct = check_int("band_pct", band_pct, 1, 50, "%")
    lim.clock = clock
    if rating_a is not None:
        check_int("rating_a", rating_a, 1, 2000, "A")
        # Duty mode (opt-in, protected): up to the rating itself at any moment; duty.py
        # holds the 80 % as a three-hour average.
        pct = 100 if duty else panelrules.SETPOINT_PCT
        top_a = rating_a * pct // 100
        top_w = panelrules.rating_w(rating_a, lim.legs, volts) * pct // 100
        if setpoint_w is None and setpoint_a is None:
            setpoint_a = top_a
        if setpoint_a is not None and setpoint_a > top_a:
            raise ValueError("error: setpoint_a must be at most %d%% of rating_a (%d A), got %r"
                             % (pct, top_a, setpoint_a))
        if setpoint_w is not None and setpoint_w > top_w:
            raise ValueError("error: setpoint_w must be at most %d%% of the rating (%d W), got %r"
                             % (pct, top_w, setpoint_w))
    elif duty:
        raise ValueError("error: duty mode needs rating_a")
    elif setpoint_w is None and setpoint_a is None:
        raise ValueError("error: give setpoint_w, setpoint_a or rating_a")
    lim.rating_a = rating_a
    if setpoint_w is not None:
        check_int("setpoint_w", setpoint_w, 0, 500000, "W")
    if setpoint_a is not None:
        check_int("setpoint_a", setpoint_a, 0, 2000, "A")
    lim.setpoint_w = setpoint_w
    lim.setpoint_a = setpoint_a
    lim._uncontrolled = []    # (rated_w, leg) of loads no one can shed
    lim._cap_w = lim._cap_ma = NO_LIMIT   # the target they hold down: add_uncontrolled
    lim._sources = {}         # name -> [w, ma, until_ms or None, from_ms or None]
    lim.version = 0           # bumped on every change; the controller caches on it
    lim.next_expiry_ms = None
    if big_uncontrolled_w:
        add_uncontrolled(lim, big_uncontrolled_w, big_uncontrolled_leg)


def add_uncontrolled(lim, rated_w, leg):
    """Limits.add_uncontrolled: lists the load and, with a rating, recomputes the caps."""
    if leg not in LEGS:
        raise ValueError("error: leg must be 'L1', 'L2' or 'L1L2', got %r" % (leg,))
    try:
        panelrules.leg_volts(leg, lim.legs, lim.volts)
    except ValueError as e:
        raise ValueError("error: leg %r: %s" % (leg, e))
    lim._uncontrolled.append((check_int("rated_w", rated_w, 0, 500000, "W"), leg))
    if lim.rating_a is not None:
        lim._cap_w, lim._cap_ma = panelrules.uncontrolled_caps(lim.rating_a, lim.legs, lim.volts,
                                                           lim._uncontrolled)
    lim.version += 1


def init_controller(ctl, loads, limits, clock, stale_ms, settle_s, stagger_s):
    """Controller.__init__'s checks and fields (its defaults are in shed.py)."""
    names = set()
    for load in loads:
        if load.name in names:
            raise ValueError("error: two loads named %r" % (load.name,))
        names.add(load.name)
    ctl.loads = list(loads)
    # Restore order: most important first, ties in list order (MicroPython's sorted() is
    # not stable: the list index is part of the key).
    ranked = sorted([(l.priority, i, l) for i, l in enumerate(loads) if l.kind != KIND_NEVER],
                    key=lambda t: t[0] * 1024 + t[1])
    ctl._ctl = [t[2] for t in ranked]
    ctl._shed_order = list(reversed(ctl._ctl))
    ctl.limits = limits
    ctl.clock = clock
    if limits.clock is None:
        limits.clock = clock
    for load in loads:
        if load.kind == KIND_NEVER:
            limits.add_uncontrolled(load.rated_w, load.leg)
    ctl.stale_ms = check_int("stale_ms", stale_ms, 100, 600000, "ms")
    # Since when there has been room to raise a load; a raise waits until that room has
    # lasted settle_s, so a brief dip (a kettle's thermostat cycling) restores nothing.
    ctl._room_since_ms = None
    ctl.settle_ms = check_int("settle_s", settle_s, 0, 3600, "s") * 1000
    ctl.stagger_ms = check_int("stagger_s", stagger_s, 0, 3600, "s") * 1000
    ctl._max_response_ms = max([l.response_ms for l in ctl._ctl] or [0])
    now = clock.ticks_ms()
    ctl.now_ms = now
    # Thresholds (W for the total, mA per leg); NO_LIMIT where none applies.
    ctl._lim_version = -1
    ctl._shed_w = ctl._restore_w = NO_LIMIT
    ctl._shed_ma = ctl._restore_ma = NO_LIMIT
    ctl.limit_w = ctl.shed_w = ctl.restore_w = None
    ctl.limit_source = None
    ctl.limit_ma = ctl.shed_ma = ctl.restore_ma = None
    ctl.projected_w = 0
    # Projected power after this update's commands take effect.
    ctl._p_w = 0
    ctl._p1 = 0
    ctl._p2 = 0
    ctl._pending_until = now
    ctl._window_until = None    # a load cleared from stuck answers until then (set_uncontrollable)
    ctl._next_up_ms = now
    ctl._housekeep_ms = now
    # Until the first valid measurement the controller is in failsafe: all shed.
    ctl._failsafe = True
    ctl._recovering = False
    ctl.state = "failsafe"
    ctl.failsafe_count = 0
    ctl.headroom_w = 0
    ctl._stuck = []         # uncontrollable loads: out of the shed order, rating reserved
    ctl.soaker = None       # an export.Soaker sets itself here: stepped after each update
