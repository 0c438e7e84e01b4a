"""A pickle reader for dataset files that never runs code from the file.

`pickle.load` calls whatever a file names (a `__reduce__` payload runs `os.system` as easily as it
rebuilds a NumPy array), so dataset pickles are read by `load_plain_pickle`, which admits only the
globals that plain data needs: NumPy's array, dtype and scalar reconstructors under their NumPy 1 and
NumPy 2 names, and `_codecs.encode` for the latin-1 bytes of arrays pickled by Python 3 with protocol
2. Dicts, lists, tuples, str, bytes, ints, floats, bools and None need no global. Any other global is
refused before it is called, with an error that names the file and the global.
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ACCEPTED", "RefusedPickle", "load_plain_pickle"]

ACCEPTED = "dicts, lists, str/bytes, ints, numpy arrays and dtypes"


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes under protocol 2; other codecs are refused."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r}; only latin1 is accepted")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric
    found = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
             "_frombuffer": numeric._frombuffer}
    names = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): _latin1_encode}
    for module in ("numpy.core", "numpy._core"):  # files written under NumPy 1 and NumPy 2
        for name in ("_reconstruct", "scalar"):
            names[(f"{module}.multiarray", name)] = found[name]
        names[(f"{module}.numeric", "_frombuffer")] = found["_frombuffer"]
    return names


_ALLOWED = _numpy_globals()


class RefusedPickle(pickle.UnpicklingError):
    """The file refers to a global that plain data never needs."""


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, what: str):
        super().__init__(file, encoding="bytes")
        self.path, self.what = path, what

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RefusedPickle(f"{self.path} is not {self.what}: it refers to {module}.{name}; "
                                f"accepted: {ACCEPTED}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle(f"{self.path} is not {self.what}: it holds a persistent reference; "
                            f"accepted: {ACCEPTED}")


def load_plain_pickle(path: Path, what: str) -> Any:
    """Read the pickle at `path` (Python 2 strings as bytes, as the CIFAR-10 files need).

    `what` describes the expected content for the error ("a CIFAR-10 batch"). Raises RefusedPickle
    (an UnpicklingError) for any global outside the plain-data list; other damage raises what
    `pickle` raises (UnpicklingError, EOFError, ValueError, ...).
    """
    with open(path, "rb") as fh:
        return _PlainUnpickler(fh, Path(path), what).load()
