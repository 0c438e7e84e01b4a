"""part.explain.images: what a conversion to the model input does, and fitting an upload to a dataset's style."""

import numpy as np
from PIL import Image, ImageDraw

from part.explain.images import conversion_notes, fit_to_style, to_tensor


def _photo(background=(240, 240, 235), garment=(30, 40, 90), size=(400, 300)):
    image = Image.new("RGB", size, background)
    ImageDraw.Draw(image).rectangle((150, 40, 250, 260), fill=garment)  # 101 x 221 pixels
    return image


def test_conversion_notes_name_shrinking_squashing_and_colour_loss():
    notes = conversion_notes(_photo(), 1, 28)
    assert notes == ["shrunk from 400x300 to 28x28 pixels (153x fewer pixels)", "aspect ratio 400:300 squashed to a square",
                     "converted from RGB colour to greyscale"]
    assert conversion_notes(Image.new("L", (28, 28)), 1, 28) == []
    assert conversion_notes(Image.new("L", (10, 10)), 3, 32) == ["enlarged from 10x10 to 32x32 pixels",
                                                                  "greyscale copied into 3 colour channels"]


def test_fashion_style_inverts_crops_to_the_object_and_pads_to_a_square():
    x, steps = fit_to_style(_photo(), "fashion-mnist", 1, 28)
    grey = x[0, 0].numpy()
    assert x.shape == (1, 1, 28, 28) and steps[0] == "inverted the light background to black"
    assert "cropped to the object (101x221 pixels)" in steps
    assert "padded to a 237x237 square with black (margin 8 px)" in steps
    assert grey[:, :5].max() < 0.05 and grey[:, -5:].max() < 0.05 and grey[0].max() < 0.2  # black padding (bicubic bleeds a little)
    assert grey[2:26, 10:18].min() > 0.9  # the garment is bright and spans the height but the margin
    plain = to_tensor(_photo(), 1, 28)[0, 0].numpy()
    assert plain[0, 0] > 0.9  # without fitting the background stays light


def test_a_dark_background_is_not_inverted_and_other_datasets_are_centre_cropped():
    _, steps = fit_to_style(_photo(background=(0, 0, 0), garment=(200, 200, 200)), "fashion-mnist", 1, 28)
    assert not any("inverted" in s for s in steps)
    x, steps = fit_to_style(_photo(), "cifar10", 3, 32)
    assert x.shape == (1, 3, 32, 32) and steps == ["centre-cropped to a 300x300 square", "resized 300x300 to 32x32"]
    assert np.allclose(x[0, :, 16, 16].numpy(), np.array([30, 40, 90]) / 255, atol=0.02)  # centre kept, not squashed
