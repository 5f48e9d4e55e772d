"""Helpers shared by the fixture scripts (make-second-model, make-template-models,
tests/templates/reference.py): the cache directory, pinned Python packages installed into a
private directory of it, and copying a GGUF with changed metadata.

The scripts find this module through their own directory (Python puts a script's directory
first on sys.path); tests/templates/reference.py adds scripts/ itself.
"""
import importlib
import os
import subprocess
import sys

# Pinned so that every machine writes the same files and renders the same text.
GGUF_SPEC = "gguf==0.19.0"
JINJA2_SPEC = "jinja2==3.1.6"


def cache_dir():
    return os.environ.get("RIGLLAMA_CACHE") or os.path.expanduser("~/.cache/rigllama")


def logger(prog):
    def log(msg):
        print(f"{prog}: {msg}", file=sys.stderr)
    return log


def pip_import(module, spec, subdir, log):
    """Imports `module`; if it is missing, installs `spec` into the cache's `subdir` (not the
    system site-packages) and imports it from there."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    pkgdir = os.path.join(cache_dir(), subdir)
    if pkgdir not in sys.path:
        sys.path.insert(0, pkgdir)
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    log(f"installing {spec} into {pkgdir}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-script-location", "--root-user-action=ignore",
                    "--target", pkgdir, spec],
                   check=True, stdin=subprocess.DEVNULL, stdout=sys.stderr)
    # The failed import above cached pkgdir as having no modules.
    importlib.invalidate_caches()
    return importlib.import_module(module)


def import_gguf(log):
    return pip_import("gguf", GGUF_SPEC, "pygguf", log)


def import_jinja2(log):
    return pip_import("jinja2", JINJA2_SPEC, "pyjinja2", log)


def copy_gguf(gguf, reader, dest, set_values=None, adjust=None, tensors=None):
    """Writes DEST (through DEST.part, renamed at the end) with the metadata and tensors of
    `reader`, a gguf.GGUFReader.

    set_values: {key: value}. An existing key keeps its type and gets the value; a new key must
    be a string, bool or int (added as a GGUF string, bool or uint32); None removes the key.
    adjust: optional fn(field, value) -> value, applied to every copied field's value.
    tensors: the reader's tensors to keep (default: all of them).
    Returns the number of tensors written."""
    set_values = dict(set_values or {})
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    part = dest + ".part"
    writer = gguf.GGUFWriter(part, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()

    # Copy metadata as gguf's own gguf_new_metadata.py does; GGUF.* are virtual fields and
    # the writer adds general.architecture itself.
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if field.name in set_values:
            value = set_values.pop(field.name)
            if value is None:
                continue
        else:
            value = field.contents()
        if adjust is not None:
            value = adjust(field, value)
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
    for key, value in set_values.items():
        if value is None:
            continue
        # bool before int: a bool is an int in Python.
        if isinstance(value, bool):
            writer.add_key_value(key, value, gguf.GGUFValueType.BOOL)
        elif isinstance(value, int):
            writer.add_key_value(key, value, gguf.GGUFValueType.UINT32)
        elif isinstance(value, str):
            writer.add_key_value(key, value, gguf.GGUFValueType.STRING)
        else:
            raise TypeError(f"copy_gguf: new key {key} must be a string, bool or int, "
                            f"got {type(value).__name__}")

    tensors = reader.tensors if tensors is None else tensors
    # Quantized tensors come back as raw bytes; raw_dtype makes the writer record the real
    # type and element shape instead of uint8.
    for t in tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    os.replace(part, dest)
    return len(tensors)
