"""``--channels mean|N|all`` (train, cv) and its older alias ``--channel N``.

typer and the standard library at the top (``earshot --help`` stays fast); the rule itself is
parsed by :func:`earshot.io.channels.channel_rule` when a verb runs.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

__all__ = ["Channels", "resolve_channels"]

#: ``--channels``: the channel rule stored in the bundle (see :mod:`earshot.io.channels`).
Channels = Annotated[Optional[str], typer.Option(
    help="Microphones to use: mean (the average of all channels' waveforms; the default) | N (channel N, 0-based) "
         "| all (every channel, fused: each channel's mel power averaged before the dB).")]


def resolve_channels(channel: Optional[int], channels: Optional[str]):
    """The channel rule from ``--channels`` or ``--channel N``: None (mean), an int or ``"all"``.

    Raises
    ------
    ParameterError
        A value that is not a rule, or both options given with different values (one line).
    """
    from earshot.errors import ParameterError  # deferred: the library loads when a verb runs (fast --help)
    from earshot.io.channels import channel_rule  # deferred: as above

    if channels is None:
        return channel_rule(channel, name="--channel")
    rule = channel_rule(channels, name="--channels")
    if channel is not None and rule != channel:
        raise ParameterError(f"--channel {channel} and --channels {channels}: give one of them "
                             "(--channel N is the same as --channels N)")
    return rule
