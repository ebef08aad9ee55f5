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
    "water_heater": {"output": 0, "ct": "CT3", "watts": 4500, "legs": "L1L2"},
    "ev": {"ct": "CT4", "max_a": 32, "volts": 240, "need_wh": 30000,
           "response_delay_ms": 5000, "arrive_h": 17.5, "legs": "L1L2"},
}
