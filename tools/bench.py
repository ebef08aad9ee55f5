#!/usr/bin/env python3
"""`make bench`: every benchmark in one run, one `name: value` line per figure.
Each tools/bench_*.py module measures its figures side by side (ratios come from one run,
since these machines are noisy); tests never assert on speed."""

import importlib
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def main():
    sys.path.insert(0, str(TOOLS))
    for path in sorted(TOOLS.glob("bench_*.py")):
        module = importlib.import_module(path.stem)
        print("# %s" % path.stem, flush=True)
        for name, value in module.run():
            if isinstance(value, float):
                value = "%.3g" % value if abs(value) < 1000 else "%.0f" % value
            print("%s: %s" % (name, value), flush=True)


if __name__ == "__main__":
    main()
