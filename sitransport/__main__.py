"""``python -m sitransport`` runs the command line (see :mod:`sitransport.cli`)."""

from sitransport.cli import main

raise SystemExit(main())
