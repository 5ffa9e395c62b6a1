"""The ``rnnkit`` command line: a thin typer layer over rnnkit's Python API."""
