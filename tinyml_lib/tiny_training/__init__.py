"""Training tiny models with other teachers (Lab 05b), one module per technique, generated from the lab's solution
notebook by `make library`:

mutual   -- deep mutual learning's two losses (a peer instead of a teacher)
netaug   -- network augmentation: a layer run at a narrower width on shared weights, the augmented VGG, the tiny
            model copied out
repair   -- fine-tuning a pruned or quantized model with the dense model as its teacher, or with cross-entropy
"""
