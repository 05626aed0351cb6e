"""NAS without the training bill (Lab 04b, neural architecture search part 2), one module per technique, generated
from the lab's solution notebook by `make library`:

net2net  -- Net2WiderNet on an inverted residual's hidden layer and Net2DeeperNet's identity layer
proxies  -- zero-shot proxies of an untrained architecture: NASWOT's activation-pattern score and the Zen-score

The supernet, its subnets, their encoding and the accuracy predictor they are compared with are Lab 04's:
tinyml_lib.supernet and tinyml_lib.nas.
"""
