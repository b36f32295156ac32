# Reference values for the Shapiro-Wilk test (Royston's algorithm, AS R94)
# as SciPy computes them, for test/shared/guard/shapiro-wilk.test.ts.
# Run: python3 scripts/guard/shapiro-reference.py > test/fixtures/guard/shapiro-reference.json
# Python only writes this committed file; nothing runs it at run time.
import json

import numpy as np
from scipy import stats

rng = np.random.default_rng(20261128)
cases = []
for n in [3, 4, 5, 6, 7, 10, 11, 12, 20, 50, 128, 400, 1000]:
    samples = {
        "normal": rng.normal(0.0, 1.0, n),
        "uniform": rng.uniform(0.0, 1.0, n),
        "exponential": rng.exponential(1.0, n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
    }
    for name, x in samples.items():
        x = np.round(x, 6)
        w, p = stats.shapiro(x)
        cases.append({"name": f"{name}-{n}", "x": x.tolist(), "w": float(w), "p": float(p)})
print(json.dumps({"scipy": __import__("scipy").__version__, "cases": cases}))
