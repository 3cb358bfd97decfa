"""Typed exceptions.  The CLI turns every :class:`RnnlmError` into one line on stderr and exit code 2."""


class RnnlmError(Exception):
    """Base class for every error rnnlm reports to a user (bad input, bad flag, missing engine...)."""


class EngineError(RnnlmError):
    """No usable graph engine, or a linker/device that this engine cannot provide."""


class CorpusError(RnnlmError, ValueError):
    """A corpus file or corpus name that cannot be read or prepared."""


class ConfigError(RnnlmError, ValueError):
    """An invalid model/training setting (e.g. ``vocab_size < 3``)."""


class CheckpointError(RnnlmError, ValueError):
    """A checkpoint or model file that is missing, truncated or inconsistent."""


class DataUnavailableError(RnnlmError):
    """A known data file is not present locally and cannot be downloaded."""


class UsageError(RnnlmError):
    """A command line that does not parse (unknown flag, missing argument...)."""
