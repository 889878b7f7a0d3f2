"""The base class of errors caused by bad input (files, names, settings), which the CLI reports in one line."""


class InputError(RuntimeError):
    """Something given to the program is wrong; the message says what, and what is accepted."""
