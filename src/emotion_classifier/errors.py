"""The one base class for input a user must fix (a file, a param, a model directory, a flag).

Entry points print such an error as one `error: ...` line and exit 1; any other exception is a bug
and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input; the message names the file (and line, where there is one) and the problem."""


def one_line_errors(main):
    """The entry points' error policy, in one place: a UserError is one `error: ...` line on stderr and exit 1."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapper
