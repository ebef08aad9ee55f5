"""The part of starting the firmware that runs once: reads the config, then builds the
hardware, meter, sampler, loads, their actuators and the controller onto the App. app.App
imports it and drops it once the App is built, so its code is not in RAM while the firmware
runs. The control modules are imported only after the config module has done its work and
been dropped: the two never share the heap at boot."""

import gc
import sys

_FEED_OPEN_MS = 6000       # J1772 gives a vehicle 5 s to stop after a pause
_IMPL_MARGIN_MA = 2000     # metercal.setup's implausible_margin_ma, widened for PV (below)


def build(app, machine, cfg, drop_config):
    board = app.board
    clock = app.clock
    import config
    app.cfg = cfg = config.merged(cfg, board)
    errors = config.validate(cfg, board)
    if errors:
        raise ValueError("config: " + "; ".join(errors))
    channels = config.channels(board, cfg)
    app.setpoint_w = config.setpoint_w(cfg)
    specs = [] if app.safe_reason else [config.load_spec(spec) for spec in cfg["loads"]]
    config = None
    if drop_config:
        # needed only to build: kept, 21.6 KB from .mpy, 9.8 KB even from flash (32-bit port)
        sys.modules.pop("config", None)
    gc.collect()
    import hw
    import limits
    import loadkind
    import meter
    import sampler
    import shed
    app.hw = hw_ = hw.build(board, machine)
    app.reset_cause = hw_.reset_cause()
    nch = len(board.CHANNELS)
    hz = board.MAINS_HZ
    pv_ma = {}
    if cfg["pv_rated_w"]:
        # PV behind the mains CTs: a mains leg legitimately reads below its sub-metered loads
        # by up to the PV's current on that leg (rms magnitudes), which the meter's
        # plausibility check (metercal.py: 2 A margin) would call a fallen-off CT.
        pv_ma["implausible_margin_ma"] = _IMPL_MARGIN_MA + cfg["pv_rated_w"] * 1000 // (
            cfg["volts"] * limits.legs(cfg["system"]))
    app.meter = meter.Meter(channels, board.ADC_SLOT_US, board.MAINS_VOLTS, hz, **pv_ma)
    for i, ch in enumerate(channels):
        app.meter.calibrate(i, gain=ch["gain"], phase_deg=ch["phase_deg"])
    # The meter's set-up code, only to build: kept, 6.9 KB from .mpy, 2.7 KB from flash.
    sys.modules.pop("metercal", None)
    # window_cycles whole cycles per measurement, scanned one cycle at a time (sampler.py)
    rounds = sampler.window_rounds(nch, board.ADC_SLOT_US, hz, 1)
    gc.collect()         # validation's garbage out: the sampler's buffer is one large block
    app.sampler = sampler.Sampler(hw_.scanner, app.meter, clock, nch, rounds,
                                  cfg["sample_period_ms"], scans=cfg["window_cycles"])
    import control
    app.contactors = []       # (load name, Contactor): op counts, wear
    app.chargers = []         # evmqtt.MqttCharger: attached to the link in tasks()
    app._watches = []         # (load, contactor, aux, charger) for the feedback monitor
    app.limits = limits.Limits(setpoint_w=app.setpoint_w, volts=cfg["volts"],
                               band_pct=cfg["band_pct"], rating_a=cfg["panel_rating_a"],
                               system=cfg["system"], duty=cfg["duty_mode"] == "on")
    for spec in specs:
        if loadkind.kind(spec["kind"]) == loadkind.KIND_NEVER:
            # No actuator: listed so that its surprise start holds the target down.
            app.limits.add_uncontrolled(spec["rated_w"], spec["leg"])
    app.bindings = [_bind(app, spec) for spec in specs
                    if loadkind.kind(spec["kind"]) != loadkind.KIND_NEVER]
    app.controller = shed.Controller([b.load for b in app.bindings], app.limits, clock,
                                     stale_ms=cfg["stale_ms"], stagger_s=cfg["stagger_s"])
    app.control = control.ControlLoop(app.controller, app.sampler, app.bindings, clock,
                                      cfg["control_period_ms"])
    # A known lower limit (a grid boundary) is planned with this long before it starts: the
    # slowest load has followed its command by then, so the step lands with no excursion.
    app.limits.lead_ms = max([b.load.response_ms for b in app.bindings] or [0]) + \
        cfg["control_period_ms"]
    app.demand = None
    if cfg["demand_window_min"]:
        import demand
        app.demand = demand.DemandWindow(
            app.limits, clock, app.wall_now, cfg["demand_window_min"], cfg["demand_budget_w"],
            cfg["demand_follow_peak"] == "on", app.demand_path, app.log)
        app.control.sources.append(app.demand)
    if cfg["duty_mode"] == "on":
        import duty
        # the loads' own draw is told apart from the base it keeps room for
        app.control.sources.append(duty.DutyWindow(
            app.limits, clock, limits.rating_w(cfg["panel_rating_a"], limits.legs(cfg["system"]),
                                               cfg["volts"]), [b.load for b in app.bindings]))
    app.soaker = None
    # Export limit and surplus (export.py): built only when a load has a soak rank and
    # something can ask for soaking: the installer's limit, surplus mode, or a grid envelope
    # (grid messages come over MQTT; gridlimits.Grid hands its export limit to app.soaker).
    # A PV inverter (pv_inverter) is curtailed where the loads cannot hold the limit.
    ranks = [(spec["soak"], i) for i, spec in enumerate(specs) if spec.get("soak")]
    inverter = cfg.get("pv_inverter")
    if (ranks or inverter) and (cfg["export_limit_w"] or cfg["surplus_mode"] == "on" or
                                cfg["mqtt_host"]):
        import export
        by_name = {}
        for b in app.bindings:
            by_name[b.load.name] = b.load
        ranks.sort()         # soak order; equal ranks in the order the loads are listed
        cur = None
        if inverter:
            import curtail
            import pvinverter
            source = pvinverter.PvInverter(clock, inverter, cfg["pv_rated_w"],
                                           cfg["pv_inverter_s"] * 1000, app.log)
            app.chargers.append(source)      # attached to the link, run as a task (app.py)
            cur = curtail.Curtail(source, clock)
        app.soaker = export.Soaker(app.controller, [by_name[specs[i]["name"]] for _, i in ranks],
                                   cfg["export_limit_w"] or None, cfg["surplus_mode"] == "on",
                                   cur)
    # Builds shed's objects, only to build: kept, 3.0 KB from .mpy (0.8 KB from flash),
    # which a stock MicroPython with everything on cannot spare (docs/architecture.md).
    sys.modules.pop("shedsetup", None)


def _channel_index(board, name):
    for i, ch in enumerate(board.CHANNELS):
        if ch["name"] == name:
            return i
    raise ValueError("load CT %r is not a channel of board %s" % (name, board.NAME))


def _bind(app, spec):
    import actuators
    import control
    import limits
    import loadkind
    import shed
    kind = loadkind.kind(spec["kind"])
    extra = {}
    for key in ("min_on_s", "min_off_s", "max_a", "min_a", "resume_pause_s"):
        if key in spec:
            extra[key] = spec[key]
    cfg = app.cfg
    # the volts across the load (120 V on one leg of a 120/240 V panel, 240 V on both): its
    # amps per leg, and so the per-leg limit, follow from it
    volts = limits.leg_volts(spec["leg"], limits.legs(cfg["system"]), cfg["volts"])
    load = shed.Load(spec["name"], kind, spec["priority"], spec["leg"], spec["rated_w"],
                     volts=volts, **extra)
    driver = spec.get("driver")
    if "output" in spec:
        actuator = _contactor(app, load, spec["output"])
    elif driver == "pilot":
        if app.hw.pilot is None:
            raise ValueError("load %s needs a J1772 pilot, board has none" % spec["name"])
        actuator = actuators.PilotCharger(app.hw.pilot, load.max_a)
    elif driver is not None:
        # Another maker's device over MQTT: the module is imported only when a load names it
        # (config.RELAY_DRIVERS: a relay's adapter is adapt_<driver>.py).
        if driver == "mqtt":
            import evmqtt
            actuator = evmqtt.from_cfg(app.cfg, load, app.clock, app.log)
        elif driver in ("subpanel", "battery"):
            # A sub-panel's panelcap, a battery's charger (docs/profile.md, "Sub-panels",
            # "A battery"): a profile device that draws up to the limit set.
            import subpanel
            actuator = subpanel.from_spec(spec, load, app.clock, app.log)
        else:
            actuator = __import__("adapt_" + driver).from_spec(spec, load, app.clock, app.log)
        app.chargers.append(actuator)        # attached to the link, run as a task (app.py)
        app._watches.append((load, None, None, actuator))
    else:
        raise ValueError("load %s has no output or driver" % spec["name"])
    if "feed_output" in spec:
        import fedcharger
        actuator = fedcharger.FedCharger(actuator, _contactor(app, load, spec["feed_output"]),
                                         app.clock, _FEED_OPEN_MS, load)
    if spec.get("sensor"):
        # A profile sensor confirms what the load draws (docs/profile.md, "A load's sensor").
        import loadsensor
        sensor = loadsensor.from_spec(spec, load, app.clock, app.log)
        app.chargers.append(sensor)          # attached to the link, run as a task (app.py)
        app._watches.append((load, None, None, sensor))
    ct = _channel_index(app.board, spec["ct"]) if spec.get("ct") else -1
    return control.Binding(load, actuator, ct)


def _contactor(app, load, index):
    import actuators
    aux = app.hw.feedback[index] if index < len(app.hw.feedback) else None
    contactor = actuators.Contactor(app.hw.outputs[index], aux)
    app.contactors.append((load.name, contactor))
    app._watches.append((load, contactor, aux, None))
    return contactor
