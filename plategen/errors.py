"""One exception type for every user-facing failure, so the CLI can print it as one line."""


class PlategenError(Exception):
    """A wrong input or environment problem; the message names the file and what is wrong."""
