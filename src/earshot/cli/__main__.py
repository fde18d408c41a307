"""``python -m earshot.cli``: the command line, as the ``earshot`` script runs it."""

from earshot.cli.app import _entry

_entry()
