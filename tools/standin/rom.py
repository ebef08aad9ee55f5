# The stand-in board's ROM: as the ESP32 port does at power-up, runs boot.py then main.py
# from the filesystem (the current directory), then the REPL (micropython -i) takes over
# with main.py's names.
import sys


def _run_file(name):
    try:
        with open(name) as f:
            code = f.read()
    except OSError:
        return
    try:
        exec(code, globals())
    except KeyboardInterrupt:
        print("KeyboardInterrupt in %s" % name)
    except Exception as e:
        sys.print_exception(e)


_run_file("boot.py")
_run_file("main.py")
