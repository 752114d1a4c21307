"""PyInstaller entry point: the ``postyard`` console script (``appliance.cli:main``)."""

import sys

from appliance.cli import main

if __name__ == "__main__":
    sys.exit(main())
