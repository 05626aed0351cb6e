"""Offline data for the labs: every file is shipped in data/ and checked against data/MANIFEST.json on load."""
from tinyml_lib.data.austen import CharTokenizer, austen_text, load_novel, train_bpe
from tinyml_lib.data.clips import DIRECTIONS, make_moving_clips
from tinyml_lib.data.digits import load_digits_split
from tinyml_lib.data.fashion_mnist import CLASSES, fashion_mnist_loader, load_fashion_mnist, load_fashion_mnist_uint8
from tinyml_lib.data.manifest import DataIntegrityError, verified_path
from tinyml_lib.data.pointclouds import SHAPES, make_point_clouds

__all__ = ["CharTokenizer", "austen_text", "load_novel", "train_bpe", "DIRECTIONS", "make_moving_clips",
           "load_digits_split", "CLASSES", "fashion_mnist_loader", "load_fashion_mnist", "load_fashion_mnist_uint8",
           "DataIntegrityError", "verified_path", "SHAPES", "make_point_clouds"]
