"""Benchmark: the heap the firmware needs with every feature on, bisected on the 32-bit
unix port (the ESP32's object sizes) by tools/heapfit.py: MQTT, grid signals (a schedule,
a reservation, an emergency), the EV charger driven over MQTT, and commands, over a
simulated hour and a bit (long enough for all of it to run, short enough for a benchmark).
run() -> [(name, value)]."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heapfit  # noqa: E402
import toolchain  # noqa: E402


def run():
    # As make deploy installs it (.mpy files on the board's filesystem, loaded into RAM),
    # and with the firmware's code in flash (frozen, or a ROMFS partition).
    kb, _ = heapfit.bisect(heapfit.Scenario("all", 1.2), 64, 192, log=lambda m: None)
    rom_kb, _ = heapfit.bisect(heapfit.Scenario("all", 1.2, rom=True), 32, 160,
                               log=lambda m: None)
    return [("firmware_heap_kb_all_features", kb),
            ("firmware_heap_kb_all_features_rom", rom_kb),
            ("firmware_heap_word_bits", toolchain.WORD_BITS)]


if __name__ == "__main__":
    for name, value in run():
        print("%s: %s" % (name, value))
