.PHONY: demo test setup bench

# Set up, then run the example task headless in real Chromium; the episode lands in runs/.
demo:
	bash scripts/setup.sh demo
	.venv/bin/python examples/demo.py

# Set up, then run the test suite.
test:
	bash scripts/setup.sh test
	.venv/bin/python -m pytest -q

bench:
	bash scripts/setup.sh test
	.venv/bin/python bench/step_overhead.py
	.venv/bin/python bench/export_throughput.py
	.venv/bin/python bench/desktop_observe.py
	.venv/bin/python bench/prefix_reuse.py
	.venv/bin/python bench/constrained_validity.py
