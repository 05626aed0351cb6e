"""Plausible wrong answers for Lab 04's exercises: each must lose points (tests/test_labs.py runs them). Most are
edits of the reference answer, (old, new) pairs (autograders/mutation.py's `mutate`)."""

MUTANTS = {
    "encode_subnet": {
        "skipped slots repeat the last kept block": (
            "kept = b < config.depths[s]", "kept, b = True, min(b, config.depths[s] - 1)"),
        "all kernels first, then all expand ratios": (
            "    return torch.tensor(features, dtype=torch.float32)",
            "    slots = [features[5 + 6 * i:11 + 6 * i] for i in range(9)]\n"
            "    features = features[:5] + [v for slot in slots for v in slot[:3]] + [v for slot in slots for v in slot[3:]]\n"
            "    return torch.tensor(features, dtype=torch.float32)"),
        "resolution as one scaled number": (
            "features = one_hot(config.resolution, space.resolutions) + one_hot(config.width, space.widths)",
            "features = [config.resolution / 28, 0.0, 0.0] + one_hot(config.width, space.widths)"),
    },
    "sample_subnet": {
        "the global random module": [
            ("depths = tuple(rng.choice(space.depths)", "depths = tuple(random.choice(space.depths)"),
            ("resolution, width = rng.choice(space.resolutions), rng.choice(space.widths)",
             "resolution, width = random.choice(space.resolutions), random.choice(space.widths)")],
        "one depth for every stage": (
            "depths = tuple(rng.choice(space.depths) for _ in space.stage_channels)",
            "depths = (rng.choice(space.depths),) * len(space.stage_channels)"),
        "never the largest resolution": ("rng.choice(space.resolutions)", "rng.choice(space.resolutions[:-1])"),
    },
    "mutate_subnet": {
        "always redraws to a different value": (
            "return rng.choice(choices) if rng.random() < prob else value",
            "return rng.choice([c for c in choices if c != value]) if rng.random() < prob else value"),
        "an added block copies the stage's last block": [
            ("kept = b < old_depth", "kept, b = True, min(b, old_depth - 1)")],
        "depths never mutate": ("depth, ks, es = maybe(old_depth, space.depths), [], []", "depth, ks, es = old_depth, [], []"),
    },
    "crossover_subnets": {
        "a whole stage from one parent": [
            ("depth, ks, es = pick(a.depths[s], b.depths[s]), [], []",
             "donor = pick(a, b)\n        depth, ks, es = donor.depths[s], [], []"),
            ("ks.append(pick(a.kernels[s][i], b.kernels[s][i]))", "ks.append(donor.kernels[s][i])"),
            ("es.append(pick(a.expands[s][i], b.expands[s][i]))", "es.append(donor.expands[s][i])")],
        "kernel and expand ratio drawn together": [
            ("ks.append(pick(a.kernels[s][i], b.kernels[s][i]))",
             "donor = pick(a, b)\n                ks.append(donor.kernels[s][i])"),
            ("es.append(pick(a.expands[s][i], b.expands[s][i]))", "es.append(donor.expands[s][i])")],
        "always the first parent's resolution and width": (
            "resolution, width = pick(a.resolution, b.resolution), pick(a.width, b.width)",
            "resolution, width = a.resolution, a.width"),
    },
    "extract_block": {
        "a plain centre crop of the 7x7 kernel": (
            "block.depthwise.kernel(hidden, kernel)",
            "block.depthwise.weight[:hidden, :, (7 - kernel) // 2:(7 + kernel) // 2, (7 - kernel) // 2:(7 + kernel) // 2]"),
        "the last channels": [
            ("block.expand.weight[:hidden, :c_in]", "block.expand.weight[-hidden:, -c_in:]"),
            ("block.project.weight[:c_out, :hidden]", "block.project.weight[-c_out:, -hidden:]")],
        "fresh BatchNorm statistics": (
            "load_conv_bn(static.block[1], block.depthwise.kernel(hidden, kernel), block.bn2)",
            "load_conv_bn(static.block[1], block.depthwise.kernel(hidden, kernel), block.bn2)\n"
            "    for stage in static.block:\n"
            "        stage[1].reset_running_stats()"),
    },
    "extract_subnet": {
        "the stride on every block": (
            "stride = net.space.stage_strides[s] if b == 0 else 1", "stride = net.space.stage_strides[s]"),
        "the last blocks of a stage": (
            "layers.append(extract_block(blocks[b],", "layers.append(extract_block(blocks[len(blocks) - config.depths[s] + b],"),
        "shares the classifier with the supernet": ("copy.deepcopy(net.classifier)", "net.classifier"),
    },
    "subnet_cost": {
        "peak in bytes, not KB": ("peak / 1024", "float(peak)"),
        "total activation memory instead of the peak": [
            ("_, peak = activation_memory", "peak, _ = activation_memory")],
        "FLOPs (2 per MAC)": ("return count_macs(model, shape)", "return 2 * count_macs(model, shape)"),
    },
    "build_cost_table": {
        "the stem does not halve the resolution": (
            "c_in, h = space.stem_channels, -(-r // 2)", "c_in, h = space.stem_channels, r"),
        "later blocks timed at the stage's input size": (
            "(False, blocks[1], (1, c, h_out, h_out), 1)", "(False, blocks[1], (1, c, h, h), 1)"),
        "the head left out": (
            'pieces[("head", r, width)] = (head, (1, c_in, h, h))', 'pass'),
    },
    "predict_cost": {
        "peak summed over the pieces": ("max(p.peak for p in pieces)", "sum(p.peak for p in pieces)"),
        "every block keyed as a stage's first": ('("block", r, w, s, b == 0,', '("block", r, w, s, True,'),
        "the stem left out": ('keys = [("stem", r)] + [', 'keys = [] + ['),
    },
    "kendall_tau": {
        "tau-a (ties kept in the denominator)": (
            "return float((dx * dy).sum()) / math.sqrt((n0 - n_x) * (n0 - n_y))", "return float((dx * dy).sum()) / n0"),
        "Pearson's correlation": (
            "return float((dx * dy).sum()) / math.sqrt((n0 - n_x) * (n0 - n_y))",
            "return float(torch.corrcoef(torch.stack([x, y]))[0, 1])"),
        "Spearman's rank correlation": (
            "return float((dx * dy).sum()) / math.sqrt((n0 - n_x) * (n0 - n_y))",
            "return float(torch.corrcoef(torch.stack([x.argsort().argsort(), y.argsort().argsort()]).double())[0, 1])"),
    },
    "fit_predictor": {
        "raw targets (not standardised)": ("target_z = (acc - model.mean) / model.std", "target_z = acc"),
        "one epoch": ("for _ in range(config.epochs):", "for _ in range(1):"),
        "gradients never zeroed": ("            opt.zero_grad()\n", ""),
    },
    "check_feasible": {
        "never infeasible": ("if limit < cost:", "if False:"),
        "MACs only": ('("max_peak_kb", limits.max_peak_kb, cheapest.peak_kb),', ""),
        "against the largest subnet": ("predict_cost(table, space.smallest())", "predict_cost(table, space.largest())"),
    },
    "random_search": {
        "ignores the limits": ("if limits.allows(predict_cost(table, config)):", "if True:"),
        "scores every subnet twice": ("scores = predict(found)", "scores = predict(found)\n    predict(found)"),
        "returns the last subnet": (
            "best = max(range(len(found)), key=lambda i: (scores[i], -i))", "best = len(found) - 1"),
    },
    "evolutionary_search": {
        "re-scores the parents": [
            ("child_scores = predict(children)\n", "child_scores = predict(children)\n        predict(parents)\n")],
        "keeps the worst as parents": ("key=lambda i: -scores[i])[:n_parents]", "key=lambda i: scores[i])[:n_parents]"),
        "children not checked against the limits": (
            "            if limits.allows(predict_cost(table, config)):\n                return config",
            "            return config"),
    },
}
