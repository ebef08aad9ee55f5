#!/usr/bin/env python3
"""A stand-in ESP32 for deploy and console tests: the MicroPython unix port behind a pty
(socat), its filesystem a directory used as its working directory. mpremote talks to the
pty exactly as to a board's USB serial port (with `resume`: the unix port has no soft reset).

    tools/standin_board.py --fs DIR --link PATH [--romfs FILE] [--inject PIN=COUNTS,...]

runs until killed. Like a board it boots boot.py then main.py from DIR and then offers the
REPL; Ctrl-C interrupts main.py; machine.reset() (mpremote reset) boots it again. Like a
board whose MicroPython has a romfs partition (boards/PANELCAP_ESP32/) it has a ROMFS
segment, kept in FILE (default DIR.romfs; --romfs '' for a stock board without one), that
`mpremote romfs deploy` writes and that is mounted at /rom at boot (tools/unix32/romseg).
Only DIR, micropython's own frozen modules, /rom, lib/ and tools/standin/ (the stand-in's
`machine`) are on its import path, in the board's order (the filesystem first): the
firmware it runs is what was deployed."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from toolchain import MICROPYTHON  # noqa: E402
STANDIN = ROOT / "tools" / "standin"


def board_loop(fs, heap, romfs):
    """The process behind the pty: boots the board again whenever micropython exits
    (machine.reset(), Ctrl-D at the REPL), like a board's reset line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for micropython, not us
    # tools/ last, for panelsim.machinecore, the part of machine shared with the simulator.
    env = dict(os.environ, PANELCAP_ROMFS=romfs,
               MICROPYPATH=":".join([".", ".frozen", str(STANDIN), "/rom",
                                     str(ROOT / "lib"), str(ROOT / "tools")]))
    while True:
        # Whatever ended it (machine.reset(), Ctrl-D, a Ctrl-C that came before micropython
        # took over SIGINT), boot again. Stopping the stand-in kills this loop too.
        subprocess.run(
            [str(MICROPYTHON), "-X", "heapsize=%s" % heap, "-i", str(STANDIN / "rom.py")],
            cwd=fs, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(0.1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fs", required=True, help="directory that is the board's filesystem")
    ap.add_argument("--link", help="path of the serial port (a symlink to the pty)")
    ap.add_argument("--heap", default="128k")
    ap.add_argument("--romfs", help="file holding the ROMFS segment (default DIR.romfs; "
                                    "'' for none, as a stock MicroPython)")
    ap.add_argument("--inject", default="", help="PIN=COUNTS,...: sine peaks on ADC pins")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    fs = str(Path(args.fs).resolve())
    romfs = fs + ".romfs" if args.romfs is None else args.romfs
    if args.child:
        board_loop(fs, args.heap, romfs)
    if not args.link:
        ap.error("--link is required")
    os.makedirs(fs, exist_ok=True)
    os.environ["STANDIN_INJECT"] = args.inject
    child = "%s %s --child --fs %s --heap %s --romfs=%s" % (
        sys.executable, Path(__file__).resolve(), fs, args.heap, romfs)
    # The pty's far side: raw (no CR/LF translation mpremote would trip on) but with isig,
    # so Ctrl-C from mpremote interrupts the running firmware as on a board.
    cmd = ["socat", "PTY,link=%s,raw,echo=0" % args.link,
           "EXEC:%s,pty,setsid,ctty,raw,echo=0,isig=1,stderr" % child]
    os.execvp("socat", cmd)


if __name__ == "__main__":
    main()
