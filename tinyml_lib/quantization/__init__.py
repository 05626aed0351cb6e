"""Quantization (Lab 03, part 1), one module per technique, generated from the lab's solution notebook by `make library`:

formats   -- two's complement, fixed point, FP32/FP16/BF16/FP8/FP4 encode and decode
linear    -- scale and zero point, quantize/dequantize per tensor, channel or group
integer   -- integer-only int8 conv/linear, folded bias, fixed-point requantization, a whole CNN in integers
kmeans    -- k-means weight quantization and codebook fine-tuning

Part 2 (Lab 03b: binary and ternary weights, clipping, QAT) is tinyml_lib.low_bit.
"""
