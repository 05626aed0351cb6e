"""Knowledge distillation (Lab 05), one module per technique, generated from the lab's solution notebook by
`make library`:

soft_targets  -- softmax at a temperature and Hinton's distillation loss (the soft term scaled by T^2)
features      -- attention maps for attention transfer, and FitNets' hint loss through a 1x1 regressor

The fused softmax + KL kernel of the lab's last section is kernels/softmax_kl.cu (tinyml_lib.kernels.softmax_kl).
"""
