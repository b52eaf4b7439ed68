"""The one error type bad input turns into.

A ``ConfigError`` names the file and the dotted key path at fault, so the CLI
can print it as one line and exit with status 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: malformed YAML, unknown key, wrong type, impossible value."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.message = message
        self.file = file
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        return f"{where}: {self.message}" if where else self.message

    def __reduce__(self):
        """Pickled whole (a worker process hands it to the parent), file and key included."""
        return _config_error, (self.message, self.file, self.key)

    def with_file(self, file: str) -> "ConfigError":
        """The same error, attributed to ``file`` when it names none yet."""
        return ConfigError(self.message, file=self.file or file, key=self.key)


def _config_error(message: str, file: str | None, key: str | None) -> ConfigError:
    return ConfigError(message, file=file, key=key)


class KeyedValueError(ValueError):
    """Raised inside a model validator to blame a key relative to that model.

    ``loader.validate`` joins the model's own location with ``key`` so that a
    cross-field check on ``model`` reports ``model.n_heads``, not just ``model``.
    """

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(message)
