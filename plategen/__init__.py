"""plategen: labelled licence-plate character data in the style of real plates."""

__version__ = "0.1.0"
