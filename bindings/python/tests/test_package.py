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


def test_a_per_request_lora_set_reaches_the_c_struct() -> None:
    from rigllama import _c_request  # the conversion, without a model

    engine_wide = _c_request(rigllama.Request())
    assert not engine_wide.lora_ids and not engine_wide.lora_scales and engine_wide.n_loras == 0
    none = _c_request(rigllama.Request(lora=[]))  # set, but empty: no adapter at all
    assert none.lora_ids and not none.lora_scales and none.n_loras == 0
    two = _c_request(rigllama.Request(lora=[(3, 0.5), (1, -2.0)]))
    assert two.n_loras == 2
    assert [two.lora_ids[i] for i in range(2)] == [3, 1] and [two.lora_scales[i] for i in range(2)] == [0.5, -2.0]


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


def test_devices_are_listed_before_any_engine() -> None:
    devices = rigllama.list_devices()
    assert devices and devices[0]["name"] == "CPU" and devices[0]["type"] == "cpu", devices
    cpu = devices[0]
    assert cpu["memory_total"] > 1 << 30 and 0 < cpu["memory_free"] <= cpu["memory_total"], cpu
    assert isinstance(cpu["description"], str)
    for device in devices:
        assert device["type"] in ("cpu", "gpu", "igpu", "accel"), device


def test_the_devices_option_reaches_the_c_struct() -> None:
    from rigllama import _c_options  # the conversion, without a model

    assert rigllama.EngineOptions.defaults().devices is None
    assert _c_options("m.gguf", rigllama.EngineOptions()).devices is None  # llama.cpp's choice
    assert _c_options("m.gguf", rigllama.EngineOptions(devices=[])).devices == b"none"  # the CPU only
    assert _c_options("m.gguf", rigllama.EngineOptions(devices=["CPU"])).devices == b"CPU"
    assert _c_options("m.gguf", rigllama.EngineOptions(devices=("Vulkan0", "CUDA1"))).devices == b"Vulkan0,CUDA1"
    with pytest.raises(TypeError, match="list of device names"):
        _c_options("m.gguf", rigllama.EngineOptions(devices="CPU"))


def test_set_backend_dir_is_refused_in_the_static_build() -> None:
    # This library has its CPU code built in: there are no modules to load.
    with pytest.raises(rigllama.RigllamaError) as raised:
        rigllama.set_backend_dir("/tmp")
    assert raised.value.status == rigllama.Status.INVALID_ARGUMENT
    assert "dynamic-backends" in raised.value.message, raised.value.message


def test_estimate_refuses_a_missing_model() -> None:
    with pytest.raises(rigllama.RigllamaError) as raised:
        rigllama.estimate("/nonexistent/model.gguf")
    assert raised.value.status != rigllama.Status.OK
    assert "/nonexistent/model.gguf" in raised.value.message


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="n_sequences"):
        rigllama.Engine("/nonexistent/model.gguf", n_sequences=2)
    with pytest.raises(TypeError, match="n_sequences"):
        rigllama.estimate("/nonexistent/model.gguf", n_sequences=2)


def test_a_missing_model_raises_with_status_and_message() -> None:
    missing = "/nonexistent/modèle-ü.gguf"  # goes in as UTF-8, must come back intact
    with pytest.raises(rigllama.RigllamaError) as raised:
        rigllama.Engine(missing)
    assert raised.value.status == rigllama.Status.MODEL_LOAD_FAILED
    assert missing in raised.value.message
    assert str(raised.value).startswith("MODEL_LOAD_FAILED: ")
