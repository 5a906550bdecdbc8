"""Command-line entry points of solo-scaca (see setup.cfg)."""
