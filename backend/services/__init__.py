"""What the routers call: the run registry and model cache, images (explain, attack, compare, figures,
exports), evaluations and who wins, the catalogue, datasets, uploads, and the training and evaluation jobs."""
