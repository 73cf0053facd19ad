"""Data set readers for the official layouts (CelebA, WFLW, class folders) and split helpers."""
