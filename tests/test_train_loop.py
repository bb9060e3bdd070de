"""The closed loop, reduced: scripted shapes episodes → hf export → ``pixelpilot train`` from scratch →
``pixelpilot serve`` → ``pixelpilot eval shapes`` on held-out seeds, for the trained model and its
untrained self (:mod:`pixelpilot.train.demo`; bench/train_loop.py runs the full size).

The assertion is a binomial bound fixed before any run: the trained model's held-out successes must
be more than any model that does not look at the screen can reach — one that clicks the best
constant point, or at random — with probability below 1 in 1,000, and its 95% interval must lie
above the untrained model's.
"""

from __future__ import annotations

import pytest

pytest.importorskip("trl", reason="pixelpilot train needs the 'train' extra (trl, peft)")
pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")

from pixelpilot.train.demo import DemoPlan, binomial_tail, run_demo  # noqa: E402

#: The reduced loop: ≤ 8 minutes on two CPU cores.
PLAN = DemoPlan(train_episodes=500, eval_episodes=40, steps=150, collect_concurrency=4, time_limit=4.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_model_trained_on_collected_runs_beats_its_untrained_self_on_held_out_layouts(tmp_path):
    result = run_demo(tmp_path, PLAN, log=print)
    print("\n".join(result.lines()))
    assert result.overlap == 0  # every evaluated layout is new to the model
    trained, untrained = result.trained, result.untrained
    assert trained.n == untrained.n == PLAN.eval_episodes
    # No model blind to the screen does this well but once in a thousand runs.
    assert binomial_tail(trained.successes, trained.n, result.baseline) < 1e-3, trained.line()
    assert trained.ci95[0] > untrained.ci95[1], (trained.line(), untrained.line())
