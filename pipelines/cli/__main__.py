"""`python -m pipelines.cli`: the `retention` command."""

import sys

from pipelines.cli import main

sys.exit(main())
