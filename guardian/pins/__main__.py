"""`python -m guardian.pins SUBCOMMAND ...`: the `guardian pins` commands on their own."""

from guardian.pins.cli import main

raise SystemExit(main())
