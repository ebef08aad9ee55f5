"""The status console: status() for the installer and the label, loads(), shed_test() to
prove each output drives its load, clear_alarm(); and status_dict(), the same for telemetry."""

import config
import consoleapp
from consoleapp import Mistake, guard
from consolecfg import cfg
from loadkind import KIND_NEVER, takes_amps


def status_dict():
    """What status() prints, for telemetry: the safe-mode reason travels with it."""
    app = consoleapp.get_app()
    s = app.sampler
    return {"state": "safe mode" if app.safe_reason else (
        "running" if app.running else "stopped"),
        "safe_reason": app.safe_reason, "setpoint_w": app.setpoint_w,
        "panel_rating_a": app.cfg["panel_rating_a"], "valid": s.valid,
        "total_w": s.total_w, "leg_ma": list(s.leg_ma),
        "loads": [(b.load.name, control_binding_state(b)) for b in app.bindings]}


def control_binding_state(binding):
    a = binding.actuator
    if takes_amps(a):
        return "%d A" % a.amps if a.amps else "paused"
    return "on" if a.is_on else "off"


def status():
    """One screen for the installer: version, state, setpoint (for the label), power."""
    from version import VERSION
    app = cfg.sync()
    c, setpoint, later = app.cfg, app.setpoint_w, ""
    if cfg.written:
        # What the next start runs, not what was built at boot: the label takes this one.
        c, setpoint = cfg.saved, config.setpoint_w(cfg.saved)
        later = "; saved in %s: start() or Ctrl-D applies it" % consoleapp.path
    if app.safe_reason:
        state = "SAFE MODE: every controllable load shed" + (
            " until start() or Ctrl-D runs the configuration saved since" if cfg.written
            else ": " + app.safe_reason)
    elif app.running:
        state = "running"
    else:
        state = "stopped: every output safe; start() or Ctrl-D runs the controller"
    print("panelcap %s on %s (last reset: %s): %s" % (VERSION, app.board.NAME,
                                                     app.reset_cause, state))
    print("setpoint %d W (panel %d A, %d x %d V, restore %d %% below)%s" % (
        setpoint, c["panel_rating_a"], config.legs(c), c["volts"], c["band_pct"], later))
    if c.get("duty_mode") == "on":
        print("DUTY MODE: up to 100 %% of the rating at any moment, %d W averaged over three "
              "hours: not an NEC 750 setpoint" % config.max_setpoint_w(c))
    s = consoleapp.measure(1)
    print("panel %d W, L1 %.1f A, L2 %.1f A, measurement %s" % (
        s.total_w, s.leg_ma[0] / 1000, s.leg_ma[1] / 1000, "valid" if s.valid else "INVALID"))
    # The limit sources over time, as MQTT's state and the page show them (snapshot.py).
    d = getattr(app, "demand", None)
    if d is not None:
        r = d.report()
        print("demand window %d min, budget %d W: %s" % (
            r["window_min"], r["budget_w"],
            "%d Wh so far, %d W allowed now, this month's peak %d W, headroom %d W" % (
                r["window_wh"], r["allowed_w"], r["peak_w"], r["headroom_w"])
            if r["status"] == "ok" else r["status"] + ": the plain limit applies"))
    control = getattr(app, "control", None)
    for src in (control.sources if control is not None else ()):
        if src.source == "duty":
            r = src.report()
            print("three-hour average %d W (held at %d W), %s W allowed now, %d W kept for "
                  "the house's own loads" % (r["avg_w"], r["cap_w"], r["allowed_w"],
                                             r["reserve_w"]))
        elif src.source == "mains_meter":
            r = src.report()
            quiet = r["silent"] or r["meter_w"] is None
            print("mains meter %s, %d readings (%d refused): %s" % (
                "no reading yet" if r["meter_w"] is None else
                "silent" if r["silent"] else "%d W" % r["meter_w"],
                r["readings"], r["bad_readings"],
                "DISAGREES with the CTs, every load shed" if r["fault"] else
                "no cross-check" if quiet else "agrees with the CTs"))
    soaker = getattr(app, "soaker", None)
    if soaker is not None:
        r = soaker.report()
        print("export %d W, limit %s%s%s; soaking %s%s" % (
            r["export_w"], "none" if r["limit_w"] is None else "%d W" % r["limit_w"],
            ", %d W over it" % r["excess_w"] if r["excess_w"] else "",
            ", surplus mode" if r["surplus"] else "",
            "%d W into %s" % (r["soak_w"], ", ".join(r["soaking"])) if r["soaking"] else
            "nothing", _pv_line(r, soaker)))
    ops = app.wear.totals() if app.wear is not None else {}
    for name, contactor in app.contactors:
        ops.setdefault(name, contactor.ops)
    watches = app.monitor.watches if app.monitor is not None else ()
    for b in app.bindings:
        name = b.load.name
        extra = ""
        if name in ops:
            extra += ", %d contactor ops" % ops[name]
        for w in watches:
            if w.load.name == name and (w.alarm or w.no_draw):
                extra += ", ALARM %s (clear_alarm(%r) once fixed)" % (w.alarm, name) \
                    if w.alarm else ", on but drawing nothing"
        print("  %-14s %s%s" % (name, control_binding_state(b), extra))
    if cfg.work is not None and cfg.changes():
        print("unsaved changes: %s" % ", ".join(cfg.changes()))


def _pv_line(r, soaker):
    """The inverter's part of the export line: its cap, when one holds it back."""
    if "pv_cap_w" not in r:
        return ""
    rated_w = soaker.curtail.source.rated_w
    delivers = "not reporting" if r["pv_w"] is None else "delivering %d W" % r["pv_w"]
    if r["pv_cap_w"] >= rated_w:
        return "; PV inverter %s, not capped" % delivers
    return "; PV inverter capped at %d W of %d W, %s" % (r["pv_cap_w"], rated_w, delivers)


def loads():
    """The configured loads, in shed order, with what each is doing now."""
    app = cfg.sync()
    print("%-14s %-9s %4s %-5s %7s %-8s %-5s %s" % (
        "load", "kind", "prio", "leg", "rated", "drive", "ct", "now"))
    specs = sorted(cfg.work["loads"] if cfg.work else app.cfg["loads"],
                   key=lambda s: -s["priority"])
    for spec in specs:
        drive = "K%d" % (spec["output"] + 1) if "output" in spec else spec.get("driver", "-")
        now = "-"
        for b in app.bindings:
            if b.load.name == spec["name"]:
                now = control_binding_state(b)
                if b.load.measured_w >= 0:
                    now += ", %d W" % b.load.measured_w
        print("%-14s %-9s %4d %-5s %6dW %-8s %-5s %s" % (
            spec["name"], spec["kind"], spec["priority"], spec["leg"], spec["rated_w"], drive,
            spec.get("ct") or "-", now))
    print("higher priority numbers are shed first")


@guard
def shed_test(name, seconds=5):
    """With the controller stopped: switches one load on for `seconds`, then sheds it for
    `seconds`, measuring both, so the installer sees that the right contactor (or pilot)
    drives the right load and CT. Refused if switching it on could pass the setpoint."""
    app = consoleapp.get_app()
    if consoleapp.running():
        raise Mistake("stop the controller first (Ctrl-C)")
    if app.safe_reason:
        raise Mistake("safe mode: %s" % app.safe_reason)
    if not isinstance(seconds, int) or not 1 <= seconds <= 30:
        raise Mistake("seconds must be an int in 1..30 s, got %r" % (seconds,))
    binding = None
    for b in app.bindings:
        if b.load.name == name:
            binding = b
    if binding is None:
        raise Mistake("no load %r (%s)" % (name, ", ".join(b.load.name for b in app.bindings)))
    load = binding.load
    if load.kind == KIND_NEVER:
        raise Mistake("%s is a 'never' load: nothing to shed" % name)
    before = consoleapp.measure(1)
    if not before.valid:
        raise Mistake("the measurement is invalid; fix metering before a shed test")
    if before.total_w + load.rated_w > app.setpoint_w:
        raise Mistake("%s (%d W) on top of %d W would pass the %d W setpoint" % (
            name, load.rated_w, before.total_w, app.setpoint_w))
    try:
        load.on = True
        load.setpoint_a = getattr(load, "max_a", 0)
        binding.actuator.apply(load)
        on_w, on_ct = _hold(app, binding, seconds)
        load.on = False
        load.setpoint_a = 0
        binding.actuator.apply(load)
        off_w, off_ct = _hold(app, binding, seconds)
    finally:
        binding.actuator.safe()
        load.on = False
    print("%s: on %d W, shed %d W: drop %d W (rated %d W)%s" % (
        name, on_w, off_w, on_w - off_w, load.rated_w,
        "" if on_ct is None else "; its CT read %d W then %d W" % (on_ct, off_ct)))


def _hold(app, binding, seconds):
    clock = app.clock
    end = clock.ticks_add(clock.ticks_ms(), seconds * 1000)
    s = consoleapp.measure(1)
    while clock.ticks_diff(end, clock.ticks_ms()) > 0:
        clock.sleep_ms(200)
        s = consoleapp.measure(1)
    ct = binding.ct_index
    return s.total_w, (s.meter.p_w[ct] if ct >= 0 else None)


def clear_alarm(name):
    """After replacing a welded contactor: the load is controlled again."""
    app = consoleapp.get_app()
    if app.monitor is None or not app.monitor.clear(name):
        print("error: no alarm on %r" % (name,))
