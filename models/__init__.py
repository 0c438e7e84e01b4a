"""Model zoo: registered architectures with normalisation built in.

Importing this package registers ``small-cnn`` (default), ``resnet18``,
``preact-resnet18``, ``wrn-34-10`` and the Vision Transformers ``vit-tiny``,
``vit-b16`` and ``deit-s16``.
"""

from .registry import ModelSpec, Normalized, create_model, get_spec, model_names, register
from . import small_cnn, resnet, preact_resnet, wide_resnet, vit  # noqa: F401  (register specs)

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
