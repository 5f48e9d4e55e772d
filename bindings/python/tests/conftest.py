"""Fixtures: the model from $RIGLLAMA_MODEL (tests that need it skip without it, saying how to
run them) and one engine shared by the tests that can share it. Tests run one at a time: two
engines generating at once on a small machine slow each other down a hundredfold."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

import rigllama


@pytest.fixture(scope="session")
def model() -> str:
    path = os.environ.get("RIGLLAMA_MODEL")
    if not path:
        pytest.skip("RIGLLAMA_MODEL is not set: set it to a GGUF model file to run the tests that load one "
                    "(in the rigllama repository, scripts/fetch-model fetches the default model and prints its path)")
    return path


@pytest.fixture(scope="session")
def engine(model: str) -> Iterator[rigllama.Engine]:
    with rigllama.Engine(model) as shared:
        yield shared
