"""Model zoo: registered architectures with normalisation built in.

Importing this package registers ``small-cnn`` (default), ``resnet18``,
``preact-resnet18`` and ``wrn-34-10``.
"""

from .registry import ModelSpec, Normalized, create_model, get_spec, model_names, register
from . import small_cnn, resnet, preact_resnet, wide_resnet  # noqa: F401  (register specs)

DEFAULT_MODEL = "small-cnn"

__all__ = [
    "DEFAULT_MODEL",
    "ModelSpec",
    "Normalized",
    "create_model",
    "get_spec",
    "model_names",
    "register",
]
