"""Plumbing any layer may use: atomic files (:mod:`.fs`), usable cores (:mod:`.cores`),
executors for batch work (:mod:`.executors`) and parameter checks (:mod:`.validate`).

Nothing here knows about audio, models or the command line.
"""
