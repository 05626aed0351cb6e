"""Plausible wrong answers for Lab 05b's exercises: each must lose points (tests/test_labs.py runs them). They are
edits of the reference answer, (old, new) pairs (autograders/mutation.py's `mutate`)."""

MUTANTS = {
    "mutual_losses": {
        "the peer not detached (each loss also moves the peer)": (
            "target_a, target_b = log_b.detach(), log_a.detach()", "target_a, target_b = log_b, log_a"),
        "each student matched to itself": (
            "target_a, target_b = log_b.detach(), log_a.detach()",
            "target_a, target_b = log_a.detach(), log_b.detach()"),
        "the reverse KL, KL(p_a || p_b) in a's loss": [
            ("kl_a = (target_a.exp() * (target_a - log_a))", "kl_a = (log_a.exp() * (log_a - target_a))"),
            ("kl_b = (target_b.exp() * (target_b - log_b))", "kl_b = (log_b.exp() * (log_b - target_b))")],
        "the KL averaged over classes too": [
            ("kl_a = (target_a.exp() * (target_a - log_a)).sum(dim=1).mean()",
             "kl_a = (target_a.exp() * (target_a - log_a)).mean()"),
            ("kl_b = (target_b.exp() * (target_b - log_b)).sum(dim=1).mean()",
             "kl_b = (target_b.exp() * (target_b - log_b)).mean()")],
        "the labels left out": (
            "return F.cross_entropy(logits_a, labels) + kl_a, F.cross_entropy(logits_b, labels) + kl_b",
            "return kl_a, kl_b"),
    },
    "sliced_conv_bn_relu": {
        "the last filters instead of the first": ("conv.weight[:c_out, :c_in]", "conv.weight[-c_out:, :c_in]"),
        "every input channel of the wide layer": ("conv.weight[:c_out, :c_in]", "conv.weight[:c_out]"),
        "the slice's running statistics copied (never updated)": (
            "bn.running_mean[:c_out], bn.running_var[:c_out], bn.weight",
            "bn.running_mean[:c_out].clone(), bn.running_var[:c_out].clone(), bn.weight"),
        "the tiny width always on batch statistics": ("training=bn.training", "training=True"),
        "augmented widths update the running statistics": (
            "y = F.batch_norm(y, None, None, bn.weight[:c_out], bn.bias[:c_out], training=True, eps=bn.eps)",
            "y = F.batch_norm(y, bn.running_mean[:c_out], bn.running_var[:c_out], bn.weight[:c_out], bn.bias[:c_out], "
            "training=True, momentum=bn.momentum, eps=bn.eps)"),
        "augmented widths on running statistics in eval mode": (
            "y = F.batch_norm(y, None, None, bn.weight[:c_out], bn.bias[:c_out], training=True, eps=bn.eps)",
            "y = F.batch_norm(y, bn.running_mean[:c_out].clone(), bn.running_var[:c_out].clone(), bn.weight[:c_out], "
            "bn.bias[:c_out], training=bn.training, eps=bn.eps)"),
        "the stride ignored": ("stride=conv.stride, padding=conv.padding", "padding=conv.padding"),
    },
    "tiny_model": {
        "the classifier's last columns": ("model.fc.weight[:, :c_in]", "model.fc.weight[:, -c_in:]"),
        "BatchNorm's running statistics not copied": (
            'for name in ("weight", "bias", "running_mean", "running_var"):', 'for name in ("weight", "bias"):'),
        "returned in train mode": ("net = vgg_like(model.config).eval()", "net = vgg_like(model.config)"),
        "views of the wide weights instead of copies": (
            "conv.weight.copy_(wide_conv.weight[:c, :c_in])", "conv.weight.data = wide_conv.weight.data[:c, :c_in]"),
    },
    "finetune_compressed": {
        "the masks applied before training only": (
            "keep_pruned = lambda step: apply_masks_(model, masks)", "pass"),
        "the flag read the wrong way round": ("if distill else", "if not distill else"),
        "the model distilled from itself": (
            "kd_loss(logits, tb, yb, temperature, alpha)", "kd_loss(logits, logits.detach(), yb, temperature, alpha)"),
        "left in train mode": ("return model.eval()", "return model"),
    },
}
