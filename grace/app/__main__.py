"""`python -m grace.app ...` is the `grace` command."""

import sys

from grace.app.cli import main

sys.exit(main())
