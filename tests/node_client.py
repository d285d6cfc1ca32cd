"""The official ``openai`` npm package for tests that drive pixelgate from Node (``tests/node``).

:func:`node_modules` installs it once (``npm install`` in ``tests/node``, from its lock file) and
returns the directory; a test links it into its working directory as ``node_modules``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_modules() -> Path:
    modules = NODE_DIR / "node_modules"
    if not (modules / "openai").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return modules
