# Kept minimal: a fault here would keep the REPL from starting. main.py runs the app.
import gc

gc.collect()
