"""Data: dataset readers (Fashion-MNIST, CIFAR-10, SVHN, Tiny-ImageNet, image folders) and their registry,
the cluttered Fashion-MNIST testbed with its object masks, batching, and the augmentation that keeps an
image and its CAM aligned, and generated CIFAR-10 files (synthetic) for timing where the dataset is missing."""

from part.data.batching import batches, len_batches, random_crop_flip, shard_bounds, sharded_batches
from part.data.clutter import ClutterDataset
from part.data.datasets import (DATASETS, DEFAULT_DATASET, DatasetFormatError, DatasetInfo, DatasetNotFound,
                                ImageFileDataset, InMemoryDataset, SubsetDataset, data_dir_env, dataset_names,
                                default_data_roots, load_dataset, object_masks)
from part.data.synthetic import write_cifar10

__all__ = ["ClutterDataset", "DATASETS", "DEFAULT_DATASET", "DatasetFormatError", "DatasetInfo", "DatasetNotFound",
           "ImageFileDataset", "InMemoryDataset", "SubsetDataset", "batches", "data_dir_env", "dataset_names",
           "default_data_roots", "len_batches", "load_dataset", "object_masks", "random_crop_flip", "shard_bounds",
           "sharded_batches", "write_cifar10"]
