"""The closed loop of ``bench/train_loop.py`` (``pixelpilot.train.demo.run_demo``), cut to two minutes:
the shapes suite's scripted solutions collected in real Chromium, exported, the ``small`` Qwen3-VL
built and trained from scratch with ``pixelpilot train``, then it and its untrained self each served
by ``pixelpilot serve`` and evaluated by ``pixelpilot eval shapes`` on held-out pages.

Sixty steps teach the answer, not the place: the untrained model writes until its answer is cut and
never clicks, the trained one answers every held-out page with a click the page registers. Whether
it clicks the *right* place takes hundreds of steps more; that is the bench's bar, not this test's
(docs/training.md, "A reduced loop for CI that shows learning where")."""

from __future__ import annotations

import pytest

pytest.importorskip("trl", reason="pixelpilot train needs the 'train' extra (trl, peft)")
pytest.importorskip("xgrammar", reason="pixelpilot serve's local backend needs the 'local' extra (xgrammar)")

from pixelpilot.train.demo import DemoPlan, run_demo  # noqa: E402

#: Enough pictures and steps for the answer's form (the loss is past 0.45 by step 40 in every bench
#: run), 12 held-out pages per model.
PLAN = DemoPlan(train_episodes=64, eval_episodes=12, steps=60, time_limit=None)
CLICKED = ("target", "other", "background")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_model_trained_on_collected_runs_answers_held_out_pages_with_clicks_its_untrained_self_never_gives(
    tmp_path,
):
    lines: list[str] = []
    result = run_demo(tmp_path, PLAN, log=lines.append)
    report = "\n".join(lines + result.lines())
    assert list(result.phases) == ["collect", "export", "build", "train", "eval (both models at once)"], report
    assert result.overlap == 0, report  # no evaluated picture was trained on
    assert result.training["steps"] == PLAN.steps and result.training["samples_in_data"] == PLAN.train_episodes
    assert result.untrained.n == result.trained.n == PLAN.eval_episodes, report
    untrained_clicks = sum(result.untrained.outcomes[k] for k in CLICKED)
    trained_clicks = sum(result.trained.outcomes[k] for k in CLICKED)
    assert untrained_clicks == 0, report
    assert trained_clicks == PLAN.eval_episodes, report
    # every click the page registered is counted where it landed, in the shape's row or not
    assert result.trained.right_row <= trained_clicks and result.trained.right_column <= trained_clicks
