"""Running the command line in-process and checking its one-line errors."""

from __future__ import annotations

import re

from earshot.cli.app import main

#: A progress line (stderr not a terminal): ``18:04:59 earshot: STAGE: DONE/TOTAL[; detail...]``.
PROGRESS_LINE = re.compile(r"^\d\d:\d\d:\d\d earshot: (?P<stage>.+?): (?P<count>started|\d+(/\d+)?)(?P<rest>(; .*)?)$")


def run(args, capsys) -> tuple[int, str, str]:
    """``earshot *args`` in this process: ``(exit code, stdout, stderr)``."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, *needles) -> None:
    """Assert exit code 1 and one ``earshot: error:`` line on stderr (no traceback) holding every needle;
    the progress lines of the steps that ran before the error (:data:`PROGRESS_LINE`) are not counted."""
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("earshot: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
