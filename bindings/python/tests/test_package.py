"""The package as installed: its version, the library it loaded, its types. No model needed."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

import rigllama


def test_the_package_is_the_library_version() -> None:
    assert re.match(r"^\d+\.\d+\.\d+", rigllama.version())
    assert rigllama.__version__ == rigllama.version()


def test_the_bundled_library_is_loaded() -> None:
    explicit = os.environ.get("RIGLLAMA_LIBRARY")
    if explicit:
        assert rigllama.library_path == explicit
    else:
        assert Path(rigllama.library_path).parent == Path(rigllama.__file__).parent, rigllama.library_path


def test_structures_match_the_c_layout() -> None:
    assert rigllama.check_layout() == []


def test_the_package_is_typed() -> None:
    assert (Path(rigllama.__file__).parent / "py.typed").is_file()
    for cls in (rigllama.Usage, rigllama.Event, rigllama.EngineOptions, rigllama.Request):
        assert dataclasses.is_dataclass(cls)


def test_the_library_defaults() -> None:
    defaults = rigllama.EngineOptions.defaults()
    assert defaults.max_checkpoints == 32
    assert defaults.max_checkpoint_bytes == 512 << 20
    assert defaults.mmproj_path is None
    assert defaults.thread_priority == rigllama.ThreadPriority.NORMAL
    assert defaults.n_seq == 1 and defaults.context_overflow == rigllama.ContextOverflow.FAIL


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="n_sequences"):
        rigllama.Engine("/nonexistent/model.gguf", n_sequences=2)


def test_a_missing_model_raises_with_status_and_message() -> None:
    missing = "/nonexistent/modèle-ü.gguf"  # goes in as UTF-8, must come back intact
    with pytest.raises(rigllama.RigllamaError) as raised:
        rigllama.Engine(missing)
    assert raised.value.status == rigllama.Status.MODEL_LOAD_FAILED
    assert missing in raised.value.message
    assert str(raised.value).startswith("MODEL_LOAD_FAILED: ")
