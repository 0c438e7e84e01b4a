"""Explain: class activation maps (every pytorch-grad-cam method, a batched native path, ensembles, and
attention rollout for ViTs), the eps-map recipes that turn a CAM into per-pixel budgets, how a CAM lines up
with the object, overlays for people."""

from part.explain.alignment import energy_on_object, mask_rule, object_mask, spearman, top_k_iou
from part.explain.attention import attention_rollout, grad_rollout
from part.explain.cam import METHODS, NATIVE_METHODS, compute_cam, resolve_layer
from part.explain.eps_maps import RECIPES, eps_map, importance, importance_scale, mask_stats, recipe_options
from part.explain.images import conversion_notes, fit_to_style, jet_overlay, open_image, to_tensor

__all__ = ["METHODS", "NATIVE_METHODS", "RECIPES", "attention_rollout", "compute_cam", "conversion_notes",
           "energy_on_object", "eps_map", "fit_to_style", "grad_rollout", "importance", "importance_scale", "jet_overlay", "mask_rule", "mask_stats",
           "object_mask", "open_image", "recipe_options", "resolve_layer", "spearman", "to_tensor", "top_k_iou"]
