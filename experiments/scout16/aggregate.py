# ruff: noqa: E501, E741  (session 8 scouting script, kept as run for provenance)
"""Mean over seeds of the fusion rules (final fusion.py outputs): fusion3 (cooking_se), fusion2 (reuters21578)."""

import collections
import json
from pathlib import Path

root = Path(__file__).parent / "results"
rows = collections.defaultdict(list)
for name, ds in (("fusion3.jsonl", "cooking_se"), ("fusion2.jsonl", "reuters21578")):
    for line in open(root / name):
        r = json.loads(line)
        if r["dataset"] == ds:
            rows[(ds, r["model_type"], r["rule"])].append(r)
for (ds, mt, rule), rs in rows.items():
    k = len(rs)
    mean = {f: sum(r[f] for r in rs) / k for f in ("micro_f1", "P", "R", "mean_labels")}
    print(
        f"{ds:13s} {mt:9s} {rule:62s} seeds {','.join(r['tag'] for r in rs):6s} F1 {mean['micro_f1']:.4f} "
        f"({' '.join('%.4f' % r['micro_f1'] for r in rs)}) P {mean['P']:.4f} R {mean['R']:.4f} L {mean['mean_labels']:.3f}/{rs[0]['gold_mean_labels']:.3f}"
    )
