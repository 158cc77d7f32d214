"""Print the requirements of the named extras of pyproject.toml, one a line.

`make venv` installs them from here, so pyproject.toml stays their only list.
"""

import sys
import tomllib
from pathlib import Path

extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]
for name in sys.argv[1:]:
    print("\n".join(extras[name]))
