"""ESP32-WROOM DIN-rail controller: pins, ADC channels, CTs and outputs. Data only."""

NAME = "esp32_dinrail"

# ADC1 only: ADC2 cannot be read while Wi-Fi is on. A WROOM module breaks out six ADC1
# pins (GPIO 32-36, 39): the voltage reference, two mains CTs and three load CTs. A fourth
# load CT needs a module that also exposes GPIO 37/38 (ESP32-PICO-V3); its entry is kept
# below with pin None so the channel table stays the same on both.
ADC_BITS = 12
ADC_ATTEN_DB = 11           # 0..~3.1 V input range
ADC_FULL_SCALE_MV = 3300    # mid-rail bias is half of this
ADC_SLOT_US = 35            # one conversion and read; channels are sampled in turn

MAINS_VOLTS = 120           # nominal, line to neutral (120/240 V split phase)
MAINS_HZ = 60

# Scan order. kind "v": AC voltage reference (9 V AC-AC adapter, divider to the ADC);
# kind "ct": current transformer with burden resistor. leg: the service leg a mains CT
# clamps, or the leg a load CT's load is on ("L1L2" for a 240 V load, metered on one wire).
CHANNELS = (
    {"name": "V1", "pin": 36, "kind": "v", "volts_per_adc_volt": 107.0},
    {"name": "L1", "pin": 39, "kind": "ct", "leg": "L1", "mains": True,
     "ct_ratio": 2000, "burden_ohm": 22.0, "rating_a": 100},
    {"name": "L2", "pin": 34, "kind": "ct", "leg": "L2", "mains": True,
     "ct_ratio": 2000, "burden_ohm": 22.0, "rating_a": 100},
    {"name": "CT3", "pin": 35, "kind": "ct", "leg": "L1L2", "mains": False,
     "ct_ratio": 2000, "burden_ohm": 33.0, "rating_a": 50},
    {"name": "CT4", "pin": 32, "kind": "ct", "leg": "L1L2", "mains": False,
     "ct_ratio": 2000, "burden_ohm": 33.0, "rating_a": 50},
    {"name": "CT5", "pin": 33, "kind": "ct", "leg": "L1", "mains": False,
     "ct_ratio": 1000, "burden_ohm": 68.0, "rating_a": 20},
    # {"name": "CT6", "pin": 37, ...}: ESP32-PICO-V3 only
)

# Contactor coil drivers. invert: True where the driver is active low.
OUTPUTS = (
    {"name": "K1", "pin": 25, "invert": False},
    {"name": "K2", "pin": 26, "invert": False},
    {"name": "K3", "pin": 27, "invert": False},
    {"name": "K4", "pin": 14, "invert": True},
)
# Auxiliary contacts, one per output, closed to ground when the contactor is closed.
FEEDBACK = (
    {"pin": 4, "pull_up": True, "invert": True},
    {"pin": 16, "pull_up": True, "invert": True},
    {"pin": 17, "pull_up": True, "invert": True},
    {"pin": 18, "pull_up": True, "invert": True},
)

# J1772 control pilot, through a non-inverting +/-12 V driver (the firmware writes the duty
# the vehicle must see); None on boards without one.
PILOT = {"pin": 19, "freq_hz": 1000}

STATUS_LED = {"pin": 2, "invert": False}

WDT_TIMEOUT_MS = 8000
