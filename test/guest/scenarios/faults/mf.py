#!/usr/bin/python3
# mf.py EXPR: evaluates EXPR over nvwa's manifest (m: the manifest, t: its targets by name) and
# prints the result; "" when there is no manifest. For the fault scenario's checks.
import json, sys

try:
    m = json.load(open("/var/nvwa/running/manifest.json"))
except FileNotFoundError:
    print("")
    sys.exit(0)
t = {x["name"]: x for x in m["targets"]}
r = eval(sys.argv[1])
print(" ".join(map(str, r)) if isinstance(r, list) else r)
