#!/usr/bin/env python3
"""Timeline of a kubemaint drain in bench/drain.sh: how soon each eviction follows the PDB watch
showing disruptionsAllowed > 0 (kubemaint's reaction), and how long the cluster takes from an
accepted eviction to the next opening of the budget (the floor no client can beat).

Usage: drain_timeline.py KUBEMAINT_DEBUG_LOG AUDIT_LOG USER_AGENT_PREFIX
"""
import json
import re
import statistics
import sys
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


log, audit, ua = sys.argv[1:4]
opens = []
for line in open(log):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.search(r"disruptions_allowed=(\d+)", line)
    if "budget update" in line and m and int(m.group(1)) > 0:
        opens.append(ts(line.split()[0]))
evictions = []
for line in open(audit):
    e = json.loads(line)
    ref = e.get("objectRef") or {}
    if (
        (e.get("userAgent") or "").startswith(ua)
        and ref.get("subresource") == "eviction"
        and (e.get("responseStatus") or {}).get("code") == 201
    ):
        evictions.append(ts(e["requestReceivedTimestamp"]))
evictions.sort()
react = [min(x for x in evictions if x >= o) - o for o in opens if any(x >= o for x in evictions)]
cycle = [min(o for o in opens if o > x) - x for x in evictions if any(o > x for o in opens)]
if not react or not cycle:
    sys.exit("timeline: no budget updates or evictions found")
print(
    f"timeline: {len(evictions)} evictions accepted; eviction issued {statistics.median(react) * 1000:.0f} ms "
    f"(median, max {max(react) * 1000:.0f} ms) after the PDB watch showed a disruption allowed; "
    f"cluster from eviction to the next allowed disruption: median {statistics.median(cycle):.2f} s, "
    f"sum {sum(cycle):.1f} s (the floor for any client)"
)
