"""The firmware with a mains meter on MQTT, on the simulated panel in real time (the meter is
a real client on the broker): tests/test_adapters.py, test_mains_dialects.py and
test_mains_meter.py. One argument, JSON: {"port", "seconds", "cfg": the mains settings}.
Prints {"loaded": [modules named mains*]} before the network starts and at the end, and four
JSON rows a second: the simulator's truth beside the firmware's view."""
import asyncio
import json
import sys

from panelsim.vtime import VirtualTime
from panelsim import machine
from panelsim.panel import Panel, params_with
from panelsim.adcgen import AdcGen
from panelsim.profile import ConstantProfile
from clock import Clock, WrappingClock
import simboard as board
import app as app_mod


def _loaded():
    return sorted(m for m in sys.modules if m.startswith("mains"))


def main():
    opts = json.loads(sys.argv[1])
    vt = VirtualTime(speed=1)
    vt.install()
    clock = WrappingClock(vt.now_ms)
    # No car; the tank calls for heat from the start.
    params = params_with(board.PANEL, ev={"arrive_h": None}, water_heater={"start_c": 50})
    panel = Panel(params, ConstantProfile(1500))
    machine.attach(panel, vt, board, AdcGen(board, panel))
    cfg = {"mqtt_host": "127.0.0.1", "mqtt_port": opts["port"], "mqtt_discovery": "",
           "telemetry_period_ms": 1000, "stagger_s": 1, "limit_w": 19200}
    cfg.update(opts["cfg"])
    logs = []
    app = app_mod.App(board, machine, clock, cfg, log=logs.append)
    app.net_clock = Clock()
    print(json.dumps({"loaded": _loaded()}))        # not before the network
    heater = [b for b in app.bindings if b.load.name == "water_heater"][0]

    async def run():
        asyncio.create_task(app.run())
        for _ in range(opts["seconds"] * 4):
            await asyncio.sleep_ms(250)
            panel.advance_to(vt.elapsed_ms())
            chk = app.mains_check
            ctl = app.controller
            print(json.dumps({"t": vt.elapsed_ms(), "truth_w": panel.total_w,
                              "ct_w": app.sampler.total_w, "limit_w": ctl.limit_w,
                              "state": ctl.state, "fault": chk.fault if chk else None,
                              "wh": heater.actuator.is_on}))
            while logs:
                print(json.dumps({"log": logs.pop(0)}))
        print(json.dumps({"loaded": _loaded()}))

    try:
        asyncio.run(run())
    finally:
        app.force_safe()


main()
