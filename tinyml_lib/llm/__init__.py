"""LLM deployment (Lab 07), one module per technique, generated from the lab's solution notebook by `make library`:

perplexity  -- perplexity on fixed windows
kv_cache    -- KV-cache decoding and the cache's size with grouped-query attention
awq         -- activation-aware weight quantization (W4, per group): scale search, int4 packing
smoothquant -- SmoothQuant W8A8: migrating activation outliers into the weights
wanda       -- Wanda pruning (|W| x input norm) at 50% and 2:4, against magnitude pruning
ffsplit     -- FFSplit: keeping heavy-hitter neurons dense, low-rank for the rest, against SVD
sparseinfer -- SparseInfer: sign-popcount prediction of zero ReLU outputs and a row-skipping FFN

The model runtime these use (SmolLM2 loader, calibration capture, decoding loops) is hand-written: `tinyml_lib.lm`.
"""
