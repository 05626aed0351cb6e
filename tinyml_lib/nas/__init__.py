"""Neural architecture search (Lab 04), one module per technique, generated from the lab's solution notebook by
`make library`:

space       -- the once-for-all supernet's design space: encode, sample, mutate, cross over
extraction  -- a standalone subnet with sliced weights and its BatchNorm statistics
cost        -- MACs and peak memory by Lab 01's counters; a per-piece table of MACs, peak and measured latency
predictor   -- Kendall's tau and an MLP accuracy predictor on the encoding
search      -- random and evolutionary search under MAC, memory and latency limits

The supernet itself (hand-written infrastructure, not graded) is tinyml_lib.supernet; its table of random subnets is
tinyml_lib.data.nas.
"""
