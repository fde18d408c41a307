"""Helpers shared by the test modules: synthetic signals and spectra, small data sets and
models built once per session, the fake ``sounddevice`` module, a live ``earshot serve``.

``tests/`` has no ``__init__.py``, so pytest (its default ``prepend`` import mode) puts
``tests/`` on ``sys.path`` for the conftest and every test module: ``from helpers.signals
import hum`` works from any of them.
"""
