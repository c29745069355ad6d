"""Shared test fixtures: the real plate folders in ../shared/data beside the repository."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "uc3m-lp").is_dir():
        pytest.fail(f"real plate data not found at {DATA} (shared/ must sit beside the repository)")
    return DATA


@pytest.fixture(scope="session")
def imported(data_dir):
    """Each real folder imported once per test session (segmentation is the slow part)."""
    from plategen.plates import load_plates

    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = load_plates(data_dir / name)
        return cache[name]

    return load
