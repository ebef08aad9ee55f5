"""The Figure 6 scenario (tools/grid_scenario.py): the same evening without and with a
reservation, on the firmware's own shed.py, grid.py and compliance.py under the unix port.
The EV must finish earlier with the reservation, and the limit rise only inside its window."""
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import grid_scenario  # noqa: E402


def test_reservation_lets_the_ev_finish_earlier(tmp_path):
    r = grid_scenario.scenario(subscription_w=5000, extra_w=4000, res_from="17:30",
                               res_hours=5)
    without, withr = r["without"], r["with"]
    # The responder quoted a fee, the firmware accepted it, the grid granted it.
    assert [a["status"] for a in r["answers"]] == ["fee", "granted"]
    assert r["answers"][0]["fee_cents"] == r["answers"][1]["fee_cents"] > 0
    assert without["ev_done_s"] is not None and withr["ev_done_s"] is not None
    assert without["ev_delivered_wh"] == withr["ev_delivered_wh"] == 30000
    gained_s = without["ev_done_s"] - withr["ev_done_s"]
    print("EV done %s without, %s with the reservation (%.1f h earlier)" % (
        grid_scenario.hhmm(without["ev_done_s"]), grid_scenario.hhmm(withr["ev_done_s"]),
        gained_s / 3600))
    assert gained_s > 2 * 3600
    w0, w1 = r["window_s"]
    for t, base, ev, peak, limit in withr["trace"]:
        end = t + 60             # a trace row's limit is the one at the end of its minute
        assert limit == (9000 if w0 <= end < w1 else 5000), (t, limit)
    for t, base, ev, peak, limit in without["trace"]:
        assert limit == 5000
    # The EV stays under the subscription whenever the house leaves it room.
    assert max(ev for t, base, ev, peak, limit in without["trace"]) <= 5000
    # What the compliance log holds: the limit changes, and excursions only where the house
    # alone went over (an electric shower): cause "/overload", nothing left to shed.
    assert withr["limit_changes"] == 3 and without["limit_changes"] == 1
    import json
    exc = [json.loads(line) for line in withr["log"] if '"excursion"' in line]
    assert exc and sum(e["dur_s"] for e in exc) == withr["excursion_s"]
    long_ones = [e for e in exc if e["dur_s"] > 15]
    assert long_ones and all(e["cause"].endswith("/overload") for e in long_ones), long_ones
