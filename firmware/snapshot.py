"""The controller's status snapshot: one dict built from the running App, read by the MQTT
state message (telemetry.py) and the status page's GET /api/status (web.py), so the two
can never disagree. Reads the control objects, changes nothing."""

from loadkind import takes_amps

FAULT_NAMES = ("rail", "clip", "no_voltage", "implausible")   # meter.FAULT_* bits 0..3
# Limit sources (limits.Limits) that the grid sets: a load held back under one is held for
# the grid (gridlimits.py, demand.py).
GRID_SOURCES = ("grid", "subscription", "emergency", "demand")


def status(app, now, gates=None, remote=(None, 0), uptime_s=None):
    """The snapshot at ticks `now`. gates: {load name: loadgate.LoadGate} (overrides; none
    without MQTT); remote: (W, s left) of the remote limit. uptime_s given:
    the firmware's version, uptime and reset cause too (MQTT sends those in its diag)."""
    m = app.meter
    c = app.controller
    mon = getattr(app, "monitor", None)
    watches = {}
    if mon is not None:
        for w in mon.watches:
            watches[w.load.name] = w
    gates = gates or {}
    source = c.limit_source or app.limits.strictest()
    faults = m.faults
    fault_names = [n for i, n in enumerate(FAULT_NAMES) if faults & (1 << i)]
    alarms = ["metering: " + n for n in fault_names]
    safe = getattr(app, "safe_reason", None)
    if safe:
        alarms.append("safe mode: " + safe)
    loads = []
    for b in app.bindings:
        load = b.load
        a = b.actuator
        d = {"name": load.name,
             "on": load.on, "power_w": load.measured_w if load.measured_w >= 0 else None}
        amps = takes_amps(a)
        if amps:
            d["setpoint_a"] = load.setpoint_a
            d["output_a"] = a.amps
            running = a.amps > 0
            full = a.amps >= load.max_a
        else:
            d["setpoint_a"] = None
            running = full = bool(getattr(a, "is_on", False))
            d["output_on"] = running
        w = watches.get(load.name)
        alarm = None
        if w is not None:    # feedback.py: "welded", "no_close", "lost" or None
            alarm = d["alarm"] = w.alarm
            d["no_draw"] = w.no_draw
            if alarm:
                alarms.append("%s: %s" % (load.name, alarm))
        gate = gates.get(load.name)
        override = gate.describe() if gate is not None else None
        d["override"] = override
        d["override_s"] = gate.remaining_s(now) if gate is not None else 0
        d["state"] = "on" if full else ("limited" if running else "off")
        d["reason"] = None if full and not alarm else _reason(app, c, load, now, alarm,
                                                                override, source)
        loads.append(d)
    out = {
        "valid": bool(app.sampler.valid),
        "total_w": m.total_w,
        "leg_ma": [m.leg_ma[0], m.leg_ma[1]],
        "leg_a": [m.leg_ma[0] // 100 / 10, m.leg_ma[1] // 100 / 10],    # display only
        "leg_w": [m.leg_w[0], m.leg_w[1]],
        "vrms_mv": m.vrms_mv,
        "setpoint_w": app.setpoint_w,
        "limit_w": c.limit_w,
        "limit_ma": c.limit_ma,
        # what set limit_w at the controller's step, so the two always agree
        "limit_source": source,
        "limits": app.limits.in_force_w(),
        "limits_ma": app.limits.in_force_ma(),      # amp-per-leg sources (grid limit_ma)
        "remote_limit_w": remote[0],
        "remote_limit_s": remote[1],
        "headroom_w": c.headroom_w,
        "control": c.state,
        "faults": faults,
        "fault_names": fault_names,
        "loads": loads,
        "alarms": alarms,
        "safe_mode": safe,
    }
    control = getattr(app, "control", None)
    if control is not None:
        # Limit sources over time (demand.py, duty.py): each window's energy, what it allows
        for src in control.sources:
            out[src.source] = src.report()
    soaker = getattr(app, "soaker", None)
    if soaker is not None:
        # Export limit and surplus (export.py): only when built
        out["export"] = soaker.report()
    if uptime_s is not None:
        from version import VERSION
        out["version"] = VERSION
        out["uptime_s"] = uptime_s
        out["reset_cause"] = app.reset_cause
    return out


def _reason(app, c, load, now, alarm, override, source):
    """Why a load is not running at full: fault, override, min_off, grid, command or
    priority (held so the panel stays under its limit, lowest priority first)."""
    if alarm or load.uncontrollable or c.state == "failsafe":
        return "fault"
    if override:
        return "override"
    # load._off_ms: its min_off, or an EV's resume pause if longer (shedsetup.init_load)
    if not load.on and c.clock.ticks_diff(now, load.switched_ms) < load._off_ms:
        return "min_off"
    if source in GRID_SOURCES:
        return "grid"
    if source == "remote":
        return "command"
    return "priority"
