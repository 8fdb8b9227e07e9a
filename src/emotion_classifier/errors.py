"""The one base class for input a user must fix (a file, a param, a model directory, a flag).

Entry points print such an error as one `error: ...` line and exit 1; any other exception is a bug
and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input; the message names the file (and line, where there is one) and the problem."""
