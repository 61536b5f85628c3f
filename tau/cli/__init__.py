"""The ``tau`` operator command (argparse); ``tau.cli.main:main`` is the console script."""
