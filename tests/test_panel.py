"""The simulated panel's physics, run under the unix port: EV, water heater, contactors, legs."""
import ast

PRELUDE = """
import simboard
from panelsim.profile import Profile, ConstantProfile
from panelsim.panel import Panel, BASE_L1, BASE_L2, WATER_HEATER, EV

def params(wh=None, ev=None, **kw):
    p = dict(simboard.PANEL)
    p["water_heater"] = dict(simboard.PANEL["water_heater"])
    p["ev"] = dict(simboard.PANEL["ev"])
    p["water_heater"].update(wh or {})
    p["ev"].update(ev or {})
    p.update(kw)
    return p
"""


def run(mpy, body):
    """Run PRELUDE + body under micropython; body prints one repr() line: return it parsed."""
    out = mpy(PRELUDE + body).stdout.strip().splitlines()
    return ast.literal_eval(out[-1])


def test_ev_energy_is_the_integral_of_its_power_through_setpoint_changes(mpy):
    # The test integrates the EV's power itself, one 100 ms step at a time: every pilot
    # change and response delay falls on a 100 ms boundary, so the power is constant within
    # a step and the sum must match the panel's bookkeeping to the microjoule.
    r = run(mpy, """
pn = Panel(params(ev={"arrive_h": 0.01, "need_wh": 100000}), ConstantProfile(800))
plan = {0: 32, 60000: 16, 61000: 40, 90000: 0, 120000: 10, 150000: 5, 170000: 24}
integral_uj = 0
changes = []        # (t, ev_ma) where the current changes
t = 0
while t < 200000:
    if t in plan:
        pn.set_pilot_amps(plan[t])
    if not changes or changes[-1][1] != pn.ev_ma:
        changes.append((t, pn.ev_ma))
    integral_uj += pn.ev_mw * 100
    t += 100
    pn.advance_to(t)
print(repr({"integral": integral_uj, "energy": pn.ev_energy_uj, "changes": changes,
            "need": pn.ev_need_uj, "need0": 100000 * 3600 * 1000000,
            "volts": pn.ev_volts, "pf": pn.ev_pf_pm}))
""")
    assert r["energy"] == r["integral"] > 0
    assert r["need0"] - r["need"] == r["energy"]
    # arrives at 36 s; follows each pilot change exactly 5 s later; 40 A offered -> 32 A max;
    # 5 A is below J1772's 6 A minimum -> no charging; changes 1 s apart are followed 1 s apart
    assert r["changes"] == [(0, 0), (41000, 32000), (65000, 16000), (66000, 32000),
                            (95000, 0), (125000, 10000), (155000, 0), (175000, 24000)]
    assert r["volts"] == 240 and r["pf"] == 990


def test_ev_energy_matches_power_integral_over_an_evening_with_irregular_steps(mpy):
    # Irregular advance steps (prime ms): the panel must split its own steps at the EV's events
    r = run(mpy, """
pn = Panel(params(ev={"need_wh": 12000}),
           Profile("tools/data/profiles/default_day.csv"))
t = 17 * 3600000
pn.advance_to(t)
pn.set_pilot_amps(32)
max_mw = 0
k = 0
while t < 22 * 3600000:
    t += 997 if k % 3 else 9973
    k += 1
    if k % 500 == 0:
        pn.set_pilot_amps((6, 12, 20, 32)[(k // 500) % 4])
    max_mw = max(max_mw, pn.ev_mw)
    pn.advance_to(t)
print(repr({"energy": pn.ev_energy_uj, "need0": 12000 * 3600 * 1000000, "left": pn.ev_need_uj,
            "ma": pn.ev_ma, "state": pn.ev_state, "remaining_j": pn.ev_need_remaining_j,
            "energy_j": pn.ev_energy_j, "max_mw": max_mw}))
""")
    # full: delivered the need, overshoot below one millisecond of full power
    assert r["energy"] >= r["need0"]
    assert r["energy"] - r["need0"] < r["max_mw"]
    assert r["energy_j"] == r["energy"] // 10**6
    assert r["ma"] == 0 and r["state"] == "B" and r["remaining_j"] == 0


def test_ev_stops_when_full_to_the_millisecond(mpy):
    r = run(mpy, """
pn = Panel(params(ev={"arrive_h": None}), ConstantProfile(0))
pn.set_pilot_amps(32)
pn.ev_plug_in(5)              # 5 Wh = 18 kJ at 32 A x 240 V x 0.99 = 7603.2 W: 2367.4 ms
pn.advance_to(4999)
assert pn.ev_ma == 0 and pn.ev_state == "B"
pn.advance_to(5000)
assert pn.ev_ma == 32000 and pn.ev_state == "C"
t = 5000
ms_on = 0
while t < 20000:
    ms_on += 1 if pn.ev_ma else 0
    t += 1
    pn.advance_to(t)
pn.set_pilot_amps(16)
pn.advance_to(40000)
print(repr({"ms_on": ms_on, "energy": pn.ev_energy_uj, "ma": pn.ev_ma,
            "mw": 32000 * 240 * 990 // 1000}))
""")
    # 18e9 uJ / 7603200 mW = 2367.4 ms -> the car draws for 2368 whole milliseconds
    assert r["ms_on"] == 2368
    assert r["energy"] == 2368 * r["mw"]
    assert r["ma"] == 0


def test_ev_arrives_at_its_hour_and_starts_after_the_response_delay(mpy):
    r = run(mpy, """
pn = Panel(params(ev={"arrive_h": 17.5, "response_delay_ms": 3000}), ConstantProfile(500))
pn.set_pilot_amps(20)
out = []
for t in (17 * 3600000, 17.5 * 3600000 - 1, 17.5 * 3600000, 17.5 * 3600000 + 2999,
          17.5 * 3600000 + 3000):
    pn.advance_to(int(t))
    out.append((pn.ev_state, pn.ev_ma))
print(repr(out))
""")
    assert r == [("A", 0), ("A", 0), ("B", 0), ("B", 0), ("C", 20000)]


def test_water_heater_thermostat_cycles_and_conserves_energy(mpy):
    r = run(mpy, """
pn = Panel(params(), ConstantProfile(300))
pn.set_contactor(0, True)
d0 = pn.wh_deficit_uj
tmin = tmax = pn.tank_mk
starts = 0
on = False
for s in range(1, 86401):
    pn.advance_to(s * 1000)
    tmin = min(tmin, pn.tank_mk)
    tmax = max(tmax, pn.tank_mk)
    if pn.wh_ma and not on:
        starts += 1
    on = pn.wh_ma > 0
print(repr({"starts": starts, "tmin": tmin, "tmax": tmax, "e": pn.wh_energy_uj,
            "drawn": pn.wh_drawn_uj, "loss": pn.wh_loss_uj, "d0": d0, "d1": pn.wh_deficit_uj,
            "wh_ma": 4500 * 1000 // 240}))
""")
    # the thermostat restores the tank after every big draw and after standby losses
    assert r["starts"] >= 4
    assert 59_900 <= r["tmax"] <= 60_100               # stops at the 60 C setpoint
    assert 30_000 < r["tmin"] < 55_000                 # morning draws pull it well down
    # first law: heat in = heat drawn + heat lost + rise in stored heat (= fall in deficit)
    assert r["e"] == r["drawn"] + r["loss"] - (r["d1"] - r["d0"])
    # a plausible day: draws take ~10 kWh, standby ~1.9 kWh
    assert 8 * 3.6e12 < r["drawn"] < 12 * 3.6e12
    assert 1.5 * 3.6e12 < r["loss"] < 2.2 * 3.6e12


def test_water_heater_carries_forward_energy_it_could_not_take(mpy):
    r = run(mpy, """
a = Panel(params(), ConstantProfile(300))
b = Panel(params(), ConstantProfile(300))
a.set_contactor(0, True)
b.set_contactor(0, True)
open_calling_ms = 0
b_run_ms = 0
for s in range(1, 14 * 3600 + 1):
    t = s * 1000
    if t == 6 * 3600000:
        b.set_contactor(0, False)          # shed through the morning draws
    if t == 9 * 3600000 + 1000:
        at9 = (a.tank_mk, b.tank_mk, b.wh_calling, b.wh_ma, a.wh_energy_uj, b.wh_energy_uj,
               a.wh_deficit_uj, b.wh_deficit_uj)
        b.set_contactor(0, True)
        b_on_at_close = b.wh_ma
    if t > 9 * 3600000 and b.wh_ma and b_run_ms == t - 9 * 3600000 - 2000:
        b_run_ms += 1000                   # b's first run after closing, unbroken
    if b.wh_calling and not b.contact_closed(0):
        open_calling_ms += 1000
        if b.wh_ma:
            raise ValueError("current through an open contactor")
    a.advance_to(t)
    b.advance_to(t)
print(repr({"at9": at9, "b_on": b_on_at_close, "ea": a.wh_energy_uj, "eb": b.wh_energy_uj,
            "ta": a.tank_mk, "tb": b.tank_mk, "open_ms": open_calling_ms, "run_ms": b_run_ms,
            "da": a.wh_deficit_uj, "db": b.wh_deficit_uj, "la": a.wh_loss_uj,
            "lb": b.wh_loss_uj, "wa": a.wh_drawn_uj, "wb": b.wh_drawn_uj}))
""")
    ta9, tb9, calling9, ma9, ea9, eb9, da9, db9 = r["at9"]
    assert calling9 and ma9 == 0 and tb9 < ta9 - 5000       # colder, wanting heat, no current
    assert eb9 < ea9
    assert r["open_ms"] > 3600000
    assert r["b_on"] == 4500 * 1000 // 240                  # takes it as soon as it can
    # it runs, unbroken, at least as long as the heat it missed needs at 4.5 kW
    assert r["run_ms"] * 4500 * 1000 >= db9
    # and it takes that heat: after 9:00, b takes more than a by about the extra deficit it
    # had (give or take the state of each thermostat's deadband at 14:00)
    extra = (r["eb"] - eb9) - (r["ea"] - ea9)
    assert 0.97 * (db9 - da9) < extra < 1.06 * (db9 - da9)
    # by 14:00 both tanks are back near the setpoint
    assert abs(r["ta"] - r["tb"]) < 3000
    # in all, b took less: its draws ran on cooler water, which took less heat away
    assert r["eb"] - r["ea"] == (r["wb"] - r["wa"]) + (r["lb"] - r["la"]) - (r["db"] - r["da"])
    assert r["wb"] < r["wa"]


def test_contactor_opening_drops_current_at_once_and_welded_contacts_do_not(mpy):
    r = run(mpy, """
pn = Panel(params(wh={"start_c": 40}), ConstantProfile(1000))
pn.set_contactor(0, True)
pn.advance_to(1000)
closed = (pn.wh_ma, pn.leg_ma("L1"), pn.leg_ma("L2"), pn.total_w, pn.l1_w, pn.l2_w)
pn.set_contactor(0, False)
opened = (pn.wh_ma, pn.leg_ma("L1"), pn.leg_ma("L2"), pn.total_w, pn.t_ms)
pn.fail_contactor_welded(0)
pn.set_contactor(0, False)
welded = (pn.wh_ma, pn.contact_closed(0))
pn.advance_to(2000)
e = pn.wh_energy_uj
print(repr({"closed": closed, "opened": opened, "welded": welded, "e": e}))
""")
    wh_ma, l1, l2, total, l1_w, l2_w = r["closed"]
    assert wh_ma == 18750 and total == 5500 and l1_w + l2_w == total
    assert l1_w == 550 + 2250 and l2_w == 450 + 2250        # base split 55/45, 240 V halves
    ma, l1o, l2o, total_o, t = r["opened"]
    assert ma == 0 and total_o == 1000 and t == 1000
    assert 18000 < l1 - l1o < 19000 and 18000 < l2 - l2o < 19000
    assert r["welded"] == (18750, True)
    assert r["e"] == 4500 * 1000 * 2000      # on for 2 s: the first and the welded second


def test_legs_phasors_and_power_factor(mpy):
    r = run(mpy, """
pn = Panel(params(wh={"start_c": 40}), ConstantProfile(2400))
pn.set_contactor(0, True)
print(repr({"l1": pn.leg_phasor_ma("L1"), "l2": pn.leg_phasor_ma("L2"), "ma": list(pn.ma),
            "ure": list(pn.unit_re), "uim": list(pn.unit_im), "legs": pn.legs}))
""")
    import math
    wh = 18750
    b1 = 2400 * 0.55 / (120 * 0.95) * 1000
    b2 = 2400 * 0.45 / (120 * 0.95) * 1000
    assert abs(r["ma"][0] - b1) <= 1 and abs(r["ma"][1] - b2) <= 1 and r["ma"][2] == wh
    phi = math.acos(0.95)
    # L1: base L1 lagging by phi plus the 240 V heater in phase with V(L1)
    assert abs(r["l1"][0] - (b1 * math.cos(phi) + wh)) < 3
    assert abs(r["l1"][1] - (-b1 * math.sin(phi))) < 3
    # L2, referenced to V(L1): the same kind of current in phase with -V(L1)
    assert abs(r["l2"][0] + (b2 * math.cos(phi) + wh)) < 3
    assert abs(r["l2"][1] - (b2 * math.sin(phi))) < 3
    assert r["legs"] == ("L1", "L2", "L1L2", "L1L2")


def test_230v_50hz_single_phase_config(mpy):
    r = run(mpy, """
p = params(volts=230, hz=50, split_phase=False, wh={"start_c": 40},
           ev={"volts": 230, "arrive_h": 0})
pn = Panel(p, ConstantProfile(1150))
pn.set_contactor(0, True)
pn.set_pilot_amps(16)
pn.advance_to(10000)
out = {"hz": pn.hz, "ev_ma": pn.ev_ma, "ev_w": pn.ev_w, "wh_ma": pn.wh_ma, "l2": pn.leg_ma("L2"),
       "l1_w": pn.l1_w, "total": pn.total_w, "legs": pn.legs, "base_l1": pn.ma[BASE_L1]}
try:
    Panel(params(volts=230, hz=50, split_phase=False), ConstantProfile(0))
except ValueError as e:
    out["err"] = str(e)
print(repr(out))
""")
    assert r["hz"] == 50 and r["legs"] == ("L1", "L2", "L1", "L1")
    assert r["ev_ma"] == 16000 and r["ev_w"] == 16 * 230 * 99 // 100
    assert r["wh_ma"] == 4500 * 1000 // 230
    assert r["l2"] == 0 and r["l1_w"] == r["total"] == 1150 + 4500 + r["ev_w"]
    assert r["base_l1"] == 1150 * 1000000 // (230 * 950)
    assert r["err"] == "load volts 240 disagree with the supply (230 V for legs 'L1')"


def test_time_never_goes_back_and_a_day_fits_the_heap(mpy):
    # How fast a day runs is make bench's (panel_day_s, tools/bench_sim_speed.py).
    r = run(mpy, """
import gc
pn = Panel(params(), Profile("tools/data/profiles/default_day.csv"))
pn.set_contactor(0, True)
pn.set_pilot_amps(32)
for s in range(0, 86400, 2):
    pn.advance_to(s * 1000)
try:
    pn.advance_to(1000)
    back = None
except ValueError as e:
    back = str(e)
gc.collect()
print(repr({"back": back, "free": gc.mem_free(), "import_j": pn.import_energy_j,
            "parts": pn.base_energy_uj + pn.wh_energy_uj + pn.ev_energy_uj,
            "legs": pn.l1_energy_uj + pn.l2_energy_uj, "import": pn.import_energy_uj,
            "ev_j": pn.ev_energy_j}))
""")
    assert r["back"] == "time went back: 1000 < 86398000 ms"
    assert r["import"] == r["parts"] == r["legs"]
    assert r["ev_j"] >= 30000 * 3600
    assert r["free"] > 64 * 1024
