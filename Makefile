.PHONY: demo test setup bench

# Set up, then run the example task headless in real Chromium; the episode lands in runs/.
demo:
	bash scripts/setup.sh demo
	.venv/bin/python examples/demo.py

# Set up, then lint, check formatting and types, and run the test suite (CI runs this).
test:
	bash scripts/setup.sh test
	.venv/bin/ruff check pixelpilot tests bench examples scripts
	.venv/bin/ruff format --check pixelpilot tests bench examples scripts
	.venv/bin/mypy
	.venv/bin/python -m pytest -q

bench:
	bash scripts/setup.sh test
	.venv/bin/python bench/step_overhead.py
	.venv/bin/python bench/export_throughput.py
	.venv/bin/python bench/desktop_observe.py
	.venv/bin/python bench/prefix_reuse.py
	.venv/bin/python bench/constrained_validity.py
