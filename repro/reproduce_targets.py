"""The names `repro reproduce` offers: its targets and its steps (what they do: repro.reproduce).

Names only, so that the command line can list them without loading the code that decides each step.
"""

TARGETS = ("table1", "table2", "table3", "all")
STEPS = ("pin", "preflight", "download", "run", "render", "verify")
