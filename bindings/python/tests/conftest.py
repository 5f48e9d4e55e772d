"""Fixtures: the model from $RIGLLAMA_MODEL (tests that need it skip without it, saying how to
run them), one engine shared by the tests that can share it, and the model with
fill-in-the-middle tokens ($RIGLLAMA_FIM_MODEL, else made with scripts/make-fim-model), and the
control vectors for the model ($RIGLLAMA_CONTROL_VECTOR_DIR, else made with
scripts/make-control-vector), and its LoRA adapters ($RIGLLAMA_LORA_DIR, else made with
scripts/make-lora-adapter). Tests run one at a time: two engines generating at once on a small
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


def _fixture_dir(model: str, variable: str, script_name: str, subdir: str, what: str) -> Path:
    """$variable, a directory of the repository's random fixtures for the model; unset, the
    repository's scripts/<script_name> makes them (into the cache's models/<subdir>), and without
    that script the test skips."""
    path = os.environ.get(variable)
    if path:
        return Path(path)
    script = Path(__file__).resolve().parents[3] / "scripts" / script_name
    if not script.is_file():
        pytest.skip(f"{variable} is not set and scripts/{script_name} is not at hand: set it to a directory of "
                    f"{what} for the model (in the rigllama repository, scripts/{script_name} MODEL DIR makes them)")
    cache = Path(os.environ.get("RIGLLAMA_CACHE") or Path.home() / ".cache" / "rigllama")
    directory = cache / "models" / subdir
    subprocess.run([sys.executable, str(script), model, str(directory)], check=True, stdout=subprocess.DEVNULL)
    return directory


@pytest.fixture(scope="session")
def control_vector_dir(model: str) -> Path:
    """$RIGLLAMA_CONTROL_VECTOR_DIR; unset, scripts/make-control-vector makes the random control
    vectors for the model."""
    return _fixture_dir(model, "RIGLLAMA_CONTROL_VECTOR_DIR", "make-control-vector", "control-vectors",
                        "control vectors")


@pytest.fixture(scope="session")
def lora_dir(model: str) -> Path:
    """$RIGLLAMA_LORA_DIR; unset, scripts/make-lora-adapter makes the random LoRA adapters for the
    model."""
    return _fixture_dir(model, "RIGLLAMA_LORA_DIR", "make-lora-adapter", "lora", "LoRA adapters")
