"""``speedsim serve`` at vanishing load against ``speedsim run`` at batch 1 (issue 27).

Two requests 100 s apart, on the trained model of ``workloads/strategies.yaml``: request 0's
TPOT per strategy against ``run``'s time per token, replaying every iteration and through the
memo (the table of docs/serving.md). ``tests/test_serve.py`` pins edge and h100; this prints
any hardware config.

    .venv/bin/python benchmarks/bench_vanishing.py [HW ...]   (names in hw_configs/; default
                                                              edge h100 h200 a100)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speedsim.api import simulate  # noqa: E402
from speedsim.config.hw import load_hardware  # noqa: E402
from speedsim.config.traffic import traffic_from_dict  # noqa: E402
from speedsim.config.workload import load_workload  # noqa: E402
from speedsim.serve import serve  # noqa: E402


def vanishing(gpu: str) -> dict[str, list[float]]:
    """Per strategy: serve TPOT / run TPOT - 1, in %, replayed and through the memo."""
    wl = load_workload(ROOT / "workloads/strategies.yaml")
    hw, g = load_hardware(ROOT / f"hw_configs/{gpu}.yaml"), wl.generation
    run = simulate(hw, wl)
    t = traffic_from_dict({"name": "vanishing", "slo": {"ttft_s": 1.0, "tpot_s": 1.0},
                           "arrivals": {"process": "constant", "rate_rps": 0.01}, "requests": 2,
                           "prompt_tokens": g.prompt_tokens, "output_tokens": g.new_tokens,
                           "scheduler": {"max_batch": 1}})
    out: dict[str, list[float]] = {}
    for exact in (True, False):
        res = serve(hw, wl, t, exact=exact)
        first = res.requests[res.requests["request"] == 0].set_index("strategy")
        for name in res.summary["strategies"]:
            ref = run.summary["strategies"][name]["time_per_token_s"]
            out.setdefault(name, []).append((first.loc[name, "tpot_s"] / ref - 1) * 100)
    return out


def main(argv: list[str]) -> int:
    for gpu in argv[1:] or ["edge", "h100", "h200", "a100"]:
        for name, (replayed, memo) in vanishing(gpu).items():
            print(f"{gpu:6} {name:16} replayed {replayed:+.3f} %  memo {memo:+.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
