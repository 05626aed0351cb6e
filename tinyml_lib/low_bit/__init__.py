"""Below eight bits (Lab 03b, quantization part 2), one module per technique, generated from the lab's solution
notebook by `make library`:

binary    -- BWN, TWN, bit packing and the XNOR-popcount product
clipping  -- the ACIQ (Laplace) model of the clipping error, MSE- and KL-optimal clipping thresholds
qat       -- fake quantization with the straight-through estimator, a fake-quantized CNN and its training loop

The linear quantizer and integer-only inference they build on are Lab 03's (part 1): tinyml_lib.quantization.
"""
