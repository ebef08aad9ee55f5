"""The simulated board for the unix port: the DIN-rail board's channels and outputs, plus
the physical panel the simulator models behind them. Data only."""

from esp32_dinrail import (ADC_BITS, ADC_FULL_SCALE_MV, ADC_SLOT_US, CHANNELS, OUTPUTS,
                           FEEDBACK, PILOT, STATUS_LED, WDT_TIMEOUT_MS)

NAME = "sim"
MAINS_VOLTS = 120
MAINS_HZ = 60

# The panel behind the board (tools/panelsim reads this).
PANEL = {
    "volts": 120,                 # per leg, line to neutral; 230 with hz 50 for a European supply
    "hz": 60,
    "split_phase": True,
    "base_pf": 0.95,              # uncontrolled household load
    "base_l1_share": 0.55,        # share of the profile's watts on L1 (rest on L2)
    "noise_counts": 1.5,          # ADC noise, RMS counts
    "bias_counts": 2048,          # mid-rail bias
    "bias_drift_counts": 6,       # slow wander of the bias
    "ct_faults": (),              # [start_s, dur_s, "CT1"]: a CT reads the rail (invalid data)
    # Resistive element behind contactor K1 (output 0), in a 190 L tank with a thermostat.
    # draws: (hour of day, litres of hot water); they repeat every day.
    "water_heater": {"output": 0, "ct": "CT3", "watts": 4500, "legs": "L1L2",
                     "tank_l": 190, "setpoint_c": 60, "deadband_c": 5, "start_c": 57,
                     "inlet_c": 12, "ambient_c": 20, "loss_w_per_k": 2, "draw_l_per_min": 8,
                     "draws": ((6.75, 50), (7.25, 40), (13.0, 10), (19.25, 30), (21.5, 60))},
    # Charger on the J1772 pilot; the vehicle draws min(pilot, max_a) while it needs energy,
    # nothing below min_a, and follows a new pilot value response_delay_ms later.
    # output: index of a contactor feeding the charger, or None.
    "ev": {"ct": "CT4", "max_a": 32, "min_a": 6, "volts": 240, "pf": 0.99, "need_wh": 30000,
           "response_delay_ms": 5000, "arrive_h": 17.5, "legs": "L1L2", "output": None},
}
