# Runs the controller; app.run() leaves every output safe however it ends. It returns on
# Ctrl-C or in safe mode; then the console (status, loads, cfg, cal, shed_test, start) is
# imported for the installer at the REPL.
import app

app.run()
from console import *  # noqa: E402,F401,F403
