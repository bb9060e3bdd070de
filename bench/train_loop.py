"""The closed loop on this machine: generate → collect → export → train → serve → eval, timed.

A Qwen3-VL of the ``small`` size (real architecture and tokenizer, random weights) is trained from
scratch with ``pixelpilot train`` on the scripted solutions of the ``shapes`` suite ("Click the red
circle." on a 192×192 page), then it and its untrained self are served with ``pixelpilot serve`` and
evaluated with ``pixelpilot eval shapes`` on held-out seeds (:mod:`pixelpilot.train.demo`).

Prints: chance (a uniformly random click) and the best constant click for the family; the untrained
and trained models' held-out success with 95% intervals and how their episodes ended; training time
and samples per second; the time of each phase; and the bar — trained ≥ 40%, ≥ 3 × the better of
chance and the constant click, and its 95% interval above the untrained model's.

Target: the whole loop in ≤ 20 minutes on two CPU cores.

    .venv/bin/python bench/train_loop.py [--work DIR] [--steps N] [--train-episodes N] [--eval-episodes N]

With ``--time-limit none`` the run is the same every time on a given machine (the schedule no longer
follows the clock); the default limit keeps a busy machine within the target instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, fields

from pixelpilot.train.demo import DemoPlan, run_demo


def minutes(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="Keep everything in this folder (default: a temporary one).")
    defaults = DemoPlan()
    for f in fields(DemoPlan):
        value = getattr(defaults, f.name)
        if isinstance(value, tuple) or f.name == "size":
            continue
        if f.name == "time_limit":
            help_ = "Minutes of training at most (the schedule keeps pace); 'none': no limit, the run repeats."
            parser.add_argument("--time-limit", type=minutes, default=value, help=help_)
            continue
        if isinstance(value, bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
            continue
        kind = type(value) if value is not None else int if f.name == "threads" else float
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()
    plan = DemoPlan(**{f.name: getattr(args, f.name) for f in fields(DemoPlan) if hasattr(args, f.name)})
    with tempfile.TemporaryDirectory(prefix="train-loop-") as tmp:
        result = run_demo(args.work or tmp, plan)
    print()
    print("\n".join(result.lines()))
    if args.json:
        figures = {
            "plan": asdict(plan),
            "chance": result.chance,
            "constant": result.constant,
            "untrained": {"n": result.untrained.n, "successes": result.untrained.successes},
            "trained": {"n": result.trained.n, "successes": result.trained.successes},
            "on_a_shape": {"untrained": result.untrained.on_a_shape, "trained": result.trained.on_a_shape},
            "right_row": {"untrained": result.untrained.right_row, "trained": result.trained.right_row},
            "right_column": {"untrained": result.untrained.right_column, "trained": result.trained.right_column},
            "training_seconds": result.training.get("seconds"),
            "samples_per_second": result.training.get("samples_per_second"),
            "phases": result.phases,
            "checks": result.checks(),
        }
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
