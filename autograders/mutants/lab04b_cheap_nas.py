"""Plausible wrong answers for Lab 04b's exercises: each must lose points (tests/test_labs.py runs them). They are
edits of the reference answer, (old, new) pairs (autograders/mutation.py's `mutate`)."""

MUTANTS = {
    "widen_inverted_residual": {
        "outgoing weights not divided among the copies": (
            "project_stage[0].weight[:, g] / copies[g].view(1, -1, 1, 1)", "project_stage[0].weight[:, g]"),
        "new units at a random initialisation (random padding)": (
            "rows = expand_stage[0].weight[g].clone()",
            "rows = torch.cat([expand_stage[0].weight, new_expand[0].weight[hidden:]])"),
        "the depthwise BatchNorm not copied along": (
            "for old, new in ((expand_stage[1], new_expand[1]), (depthwise_stage[1], new_depthwise[1])):",
            "for old, new in ((expand_stage[1], new_expand[1]),):"),
        "noise on every row": ("new_rows = rows[hidden:]", "new_rows = rows"),
        "noise not scaled by the rows' spread": (
            "new_rows += noise * new_rows.std() * torch.randn", "new_rows += noise * torch.randn"),
        "the mapping drawn from the global generator": (
            "torch.randint(hidden, (expand * c_in - hidden,), generator=generator)",
            "torch.randint(hidden, (expand * c_in - hidden,))"),
    },
    "identity_conv_bn_relu": {
        "BatchNorm's running variance unbiased": (
            "x.var((0, 2, 3), unbiased=False)", "x.var((0, 2, 3))"),
        "BatchNorm left to normalise (weight 1, bias 0)": [
            ("        norm.weight.copy_(torch.sqrt(var + norm.eps))\n", ""),
            ("        norm.bias.copy_(mean)\n", "")],
        "the identity tap in the kernel's corner": (
            "kernel // 2, kernel // 2] = 1.0", "0, 0] = 1.0"),
        "the square root forgotten": ("torch.sqrt(var + norm.eps)", "var + norm.eps"),
    },
    "naswot_score": {
        "BatchNorm on running statistics (eval mode)": (
            "copy.deepcopy(model).train()", "copy.deepcopy(model).eval()"),
        "only the units on in both images": (
            "kernel = c @ c.T + (1 - c) @ (1 - c).T", "kernel = c @ c.T"),
        "the Hamming distance itself": (
            "kernel = c @ c.T + (1 - c) @ (1 - c).T", "kernel = c.shape[1] - (c @ c.T + (1 - c) @ (1 - c).T)"),
        "codes of the last ReLU only": (
            "codes.append((inputs[0] > 0).flatten(1))", "codes.__setitem__(slice(None), [(inputs[0] > 0).flatten(1)])"),
        "the model itself runs (its mode and statistics change)": (
            "model, codes = copy.deepcopy(model).train(), []", "model, codes = model.train(), []"),
    },
    "zen_score": {
        "no BatchNorm correction": (
            "return math.log(delta.item()) + sum(math.log(s.item()) for s in scales)",
            "return math.log(delta.item())"),
        "the weights kept (no Gaussian redraw)": (
            "m.weight.normal_(generator=generator)", "pass"),
        "eps drawn before x": (
            "x = torch.randn(shape, generator=generator)\n        eps = torch.randn(shape, generator=generator)",
            "eps = torch.randn(shape, generator=generator)\n        x = torch.randn(shape, generator=generator)"),
        "BatchNorm scales of both passes": ("        for hook in hooks:\n            hook.remove()\n", ""),
        "the sum over the batch, not the mean": (".norm(dim=1).mean()", ".norm(dim=1).sum()"),
        "the L1 norm of the authors' released code, not the paper's Frobenius norm": (
            ".flatten(1).norm(dim=1)", ".flatten(1).abs().sum(dim=1)"),
    },
}
