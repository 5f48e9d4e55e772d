"""Builds the wheel with librigllama.so inside it, beside the module.

The library comes from $RIGLLAMA_LIBDIR/librigllama.so, else from the cargo target directory
($CARGO_TARGET_DIR/release, default ~/.cache/rigllama/target/release: what `make lib` builds).
It is copied with its debug symbols stripped when `strip` is there. The wheel is tagged
py3-none-<platform>: any Python 3 (ctypes, no extension module), this platform only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Dict

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _library() -> Path:
    libdir = os.environ.get("RIGLLAMA_LIBDIR")
    if not libdir:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/rigllama/target")
        libdir = os.path.join(target, "release")
    path = Path(libdir) / "librigllama.so"
    if not path.is_file():
        raise RuntimeError(f"{path} not found: build the library first (make lib), "
                           "or set RIGLLAMA_LIBDIR to the directory holding librigllama.so")
    return path


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        library = _library()
        self._tmp = tempfile.mkdtemp(prefix="rigllama-wheel-")
        bundled = Path(self._tmp) / "librigllama.so"
        shutil.copyfile(library, bundled)
        bundled.chmod(0o755)
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-unneeded", str(bundled)], check=True)
        build_data["force_include"][str(bundled)] = "rigllama/librigllama.so"
        build_data["pure_python"] = False
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
