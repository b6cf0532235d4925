"""The one error type of the exporter: a sentence for the user, printed without a traceback."""


class ExportError(Exception):
    """A refusal or failure that the command line reports as one sentence and a non-zero exit."""
