"""Mean, sample std and the two-sample t-test the benchmark tables use."""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


# two-sided 95% critical values of Student's t for 1..10 degrees of freedom (without scipy)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    try:
        from scipy.stats import t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df
    return float(t.ppf(0.975, df))


def pooled_ttest(a: List[float], b: List[float]) -> Dict[str, Any]:
    """``diff`` = mean(a) - mean(b), the ``threshold`` |diff| must exceed and whether it does
    (``exceeds_noise``): a two-sample t-test at 5% with pooled std, ``threshold`` n/a below 2
    runs on either side."""
    if not a or not b:
        return {"diff": "n/a", "threshold": "n/a", "exceeds_noise": "n/a"}
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if sa is None or sb is None:
        return {"diff": ma - mb, "threshold": "n/a", "exceeds_noise": "1 seed"}
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * sa ** 2 + (len(b) - 1) * sb ** 2) / df)
    threshold = t_critical(df) * pooled * math.sqrt(1 / len(a) + 1 / len(b))
    return {"diff": ma - mb, "threshold": threshold,
            "exceeds_noise": "yes" if abs(ma - mb) > threshold else "no"}
