"""tinyml_lib: the library the TinyML and Efficient Deep Learning labs build up.

Graded modules (for example `metrics`) are generated from the solution notebooks by `make library`;
infrastructure modules (grading, timing, models, kernels) are written by hand.
"""
__version__ = "0.1.0"
