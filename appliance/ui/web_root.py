"""Where the admin UI's templates and static files are: ``web/`` beside the package.

In the one-file binary PyInstaller unpacks them to ``<_MEIPASS>/web``; from a
checkout (``pip install -e .``) they are the repository's ``web/`` folder.
"""

from __future__ import annotations

import sys
from pathlib import Path


def web_root() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    candidates = [Path(frozen) / "web"] if frozen else []
    candidates.append(Path(__file__).resolve().parents[2] / "web")
    for candidate in candidates:
        if (candidate / "templates").is_dir():
            return candidate
    raise FileNotFoundError(
        "the admin UI's files (web/templates, web/static) were not found next to the appliance "
        f"package (looked in {', '.join(str(c) for c in candidates)}); run Postyard from a "
        "checkout (pip install -e .) or the built binary"
    )
