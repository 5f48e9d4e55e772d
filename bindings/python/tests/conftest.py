"""Fixtures: the model from $RIGLLAMA_MODEL (tests that need it skip without it, saying how to
run them), one engine shared by the tests that can share it, and the model with
fill-in-the-middle tokens ($RIGLLAMA_FIM_MODEL, else made with scripts/make-fim-model), and the
control vectors for the model ($RIGLLAMA_CONTROL_VECTOR_DIR, else made with
scripts/make-control-vector). Tests run one at a time: two engines generating at once on a small
machine slow each other down a hundredfold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
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


@pytest.fixture(scope="session")
def fim_model(model: str) -> str:
    """$RIGLLAMA_FIM_MODEL; unset, the repository's scripts/make-fim-model makes one from the model
    (into the cache), and without that script the test skips."""
    path = os.environ.get("RIGLLAMA_FIM_MODEL")
    if path:
        return path
    script = Path(__file__).resolve().parents[3] / "scripts" / "make-fim-model"
    if not script.is_file():
        pytest.skip("RIGLLAMA_FIM_MODEL is not set and scripts/make-fim-model is not at hand: set it to a model "
                    "with FIM tokens (in the rigllama repository, scripts/make-fim-model MODEL DEST makes one)")
    cache = Path(os.environ.get("RIGLLAMA_CACHE") or Path.home() / ".cache" / "rigllama")
    made = subprocess.run([sys.executable, str(script), model, str(cache / "models" / "fim-gemma3-270m.gguf")],
                          check=True, stdout=subprocess.PIPE, text=True)
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def control_vector_dir(model: str) -> Path:
    """$RIGLLAMA_CONTROL_VECTOR_DIR; unset, the repository's scripts/make-control-vector makes the
    random control vectors for the model (into the cache), and without that script the test skips."""
    path = os.environ.get("RIGLLAMA_CONTROL_VECTOR_DIR")
    if path:
        return Path(path)
    script = Path(__file__).resolve().parents[3] / "scripts" / "make-control-vector"
    if not script.is_file():
        pytest.skip("RIGLLAMA_CONTROL_VECTOR_DIR is not set and scripts/make-control-vector is not at hand: set it "
                    "to a directory of control vectors for the model (in the rigllama repository, "
                    "scripts/make-control-vector MODEL DIR makes them)")
    cache = Path(os.environ.get("RIGLLAMA_CACHE") or Path.home() / ".cache" / "rigllama")
    directory = cache / "models" / "control-vectors"
    subprocess.run([sys.executable, str(script), model, str(directory)], check=True, stdout=subprocess.DEVNULL)
    return directory
