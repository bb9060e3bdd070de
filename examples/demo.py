"""The README's demo: start the example to-do app, run examples/todo.yaml headless, print the episode.

python examples/demo.py [--headed] [--out runs]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from todo_app import TodoApp  # noqa: E402

from pixelpilot.cli import app as cli  # noqa: E402

if __name__ == "__main__":
    with TodoApp() as todo:
        try:
            cli(["run", str(HERE / "todo.yaml"), "--url", todo.url, *sys.argv[1:]], standalone_mode=True)
        except SystemExit as e:
            code = e.code
        else:
            code = 0
    sys.exit(code)
