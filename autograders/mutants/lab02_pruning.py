"""Plausible wrong answers for Lab 02's exercises: each must lose points (tests/test_labs.py runs them)."""

MUTANTS = {
    "sparsity": {
        "mean of per-tensor sparsities": """
            return sum(1.0 - int(torch.count_nonzero(t)) / t.numel() for t in tensors) / len(tensors)
        """,
        "density instead of sparsity": """
            return sum(int(torch.count_nonzero(t)) for t in tensors) / sum(t.numel() for t in tensors)
        """,
    },
    "magnitude_mask": {
        "threshold at the k-th magnitude (ties overshoot)": """
            k = int(target_sparsity * w.numel() + 0.5)
            if k == 0:
                return torch.ones_like(w, dtype=torch.bool)
            tau = w.detach().abs().flatten().kthvalue(k).values
            return w.detach().abs() > tau
        """,
        "floor instead of round": """
            k = int(target_sparsity * w.numel())
            order = w.detach().abs().flatten().argsort(stable=True)
            mask = torch.ones(w.numel(), dtype=torch.bool)
            mask[order[:k]] = False
            return mask.view_as(w)
        """,
        "ranks signed values, not magnitudes": """
            k = int(target_sparsity * w.numel() + 0.5)
            order = w.detach().flatten().argsort(stable=True)
            mask = torch.ones(w.numel(), dtype=torch.bool)
            mask[order[:k]] = False
            return mask.view_as(w)
        """,
    },
    "sensitivity_scan": {
        "never restores the layer": """
            curves = {}
            for name, w in prunable_weights(model).items():
                original = w.detach().clone()
                curves[name] = []
                for s in sparsities:
                    w.copy_(original * magnitude_mask(original, s))
                    curves[name].append(float(evaluate(model)))
            return curves
        """,
        "keeps the fraction instead of pruning it": """
            curves = {}
            for name, w in prunable_weights(model).items():
                original = w.detach().clone()
                curves[name] = []
                for s in sparsities:
                    w.mul_(magnitude_mask(original, 1.0 - s))
                    curves[name].append(float(evaluate(model)))
                    w.copy_(original)
            return curves
        """,
    },
    "choose_sparsities": {
        "strict threshold": """
            floor = dense_accuracy - max_drop
            return {name: max([s for s, acc in zip(sparsities, accs) if acc > floor], default=0.0)
                    for name, accs in curves.items()}
        """,
        "stops at the first failing sparsity": """
            floor = dense_accuracy - max_drop
            chosen = {}
            for name, accs in curves.items():
                chosen[name] = 0.0
                for s, acc in zip(sparsities, accs):
                    if acc < floor:
                        break
                    chosen[name] = s
            return chosen
        """,
    },
    "fine_tune_masked": {
        "masks applied only once, before training": """
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
            apply_masks_(model, masks)
            model.train()
            losses = []
            for x, y in tqdm(loader, disable=not progress):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss))
            model.eval()
            return losses
        """,
        "never steps the optimizer": """
            apply_masks_(model, masks)
            model.train()
            losses = []
            for x, y in tqdm(loader, disable=not progress):
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                losses.append(float(loss))
            model.eval()
            return losses
        """,
    },
    "nm_mask": {
        "keeps the smallest": """
            groups = w.detach().abs().reshape(-1, m)
            keep = groups.argsort(dim=1, stable=True)[:, :n]
            return torch.zeros(groups.shape, dtype=torch.bool).scatter_(1, keep, True).view_as(w)
        """,
        "groups down the columns": """
            groups = w.detach().abs().t().reshape(-1, m)
            keep = groups.argsort(dim=1, descending=True, stable=True)[:, :n]
            mask = torch.zeros(groups.shape, dtype=torch.bool).scatter_(1, keep, True)
            return mask.view(w.shape[1], w.shape[0]).t()
        """,
    },
    "compress_nm": {
        "column index instead of position in the group": """
            position = torch.arange(cols).expand(rows, cols)
            return w.detach()[mask].view(rows, -1), position[mask].view(rows, -1).to(torch.uint8)
        """,
        "drops the mask: first n of every group": """
            keep = (torch.arange(cols) % m < n).expand(rows, cols)
            position = (torch.arange(cols) % m).expand(rows, cols)
            return w.detach()[keep].view(rows, -1), position[keep].view(rows, -1).to(torch.uint8)
        """,
    },
    "decompress_nm": {
        "forgets the group offset": """
            dense = torch.zeros(rows, k * m // n, dtype=values.dtype)
            return dense.scatter_(1, indices.long(), values)
        """,
        "group of size m instead of n": """
            columns = (torch.arange(k) // m) * m + indices.long()
            dense = torch.zeros(rows, k * m // n, dtype=values.dtype)
            return dense.scatter_(1, columns, values)
        """,
    },
    "rank_channels": {
        "keeps the weakest channels": """
            return w.detach().flatten(1).norm(dim=1).argsort(stable=True)[:keep].sort().values
        """,
        "L1 norm": """
            return w.detach().flatten(1).abs().sum(1).argsort(descending=True, stable=True)[:keep].sort().values
        """,
        "not sorted by index": """
            return w.detach().flatten(1).norm(dim=1).argsort(descending=True, stable=True)[:keep]
        """,
    },
    "prune_vgg_channels": {
        "ranks raw filters, ignoring BatchNorm": """
            kept_in = torch.arange(model[0].in_channels)
            for (conv, bn, _), (conv2, bn2, _), width in zip(conv_bn_pairs(model), conv_bn_pairs(small), widths):
                kept = rank_channels(conv.weight, width)
                conv2.weight.copy_(conv.weight[kept][:, kept_in])
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn2, name).copy_(getattr(bn, name)[kept])
                kept_in = kept
            small[-1].weight.copy_(model[-1].weight[:, kept_in])
            small[-1].bias.copy_(model[-1].bias)
            return small
        """,
        "BatchNorm keeps the first channels": """
            kept_in = torch.arange(model[0].in_channels)
            for (conv, bn, _), (conv2, bn2, _), width in zip(conv_bn_pairs(model), conv_bn_pairs(small), widths):
                kept = rank_channels(fused_filters(conv, bn), width)
                conv2.weight.copy_(conv.weight[kept][:, kept_in])
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn2, name).copy_(getattr(bn, name)[:width])
                kept_in = kept
            small[-1].weight.copy_(model[-1].weight[:, kept_in])
            small[-1].bias.copy_(model[-1].bias)
            return small
        """,
    },
    "kmeans": {
        "never moves the centroids": """
            mu = init.double()
            return init.clone(), ((x.double()[:, None, :] - mu[None]) ** 2).sum(-1).argmin(1)
        """,
        "empty clusters collapse to the origin": """
            xd, mu = x.double(), init.double().clone()
            nearest = lambda: ((xd[:, None, :] - mu[None]) ** 2).sum(-1).argmin(1)
            for _ in range(n_iter):
                labels = nearest()
                sums = torch.zeros_like(mu).index_add_(0, labels, xd)
                mu = sums / torch.bincount(labels, minlength=len(mu))[:, None].clamp(min=1)
            return mu.to(x.dtype), nearest()
        """,
        "labels from the previous centroids": """
            xd, mu = x.double(), init.double().clone()
            labels = ((xd[:, None, :] - mu[None]) ** 2).sum(-1).argmin(1)
            for _ in range(n_iter):
                labels = ((xd[:, None, :] - mu[None]) ** 2).sum(-1).argmin(1)
                sums = torch.zeros_like(mu).index_add_(0, labels, xd)
                counts = torch.bincount(labels, minlength=len(mu))[:, None]
                mu = torch.where(counts > 0, sums / counts.clamp(min=1), mu)
            return mu.to(x.dtype), labels
        """,
    },
    "fold_layer": {
        "averages the next layer's columns": """
            one_hot = F.one_hot(labels, k).to(w.dtype)
            merged = (one_hot.T @ w.flatten(1)) / counts[:, None].to(w.dtype)
            cols = w_next.transpose(0, 1)
            avg = ((one_hot.T @ cols.flatten(1)) / counts[:, None].to(w.dtype)).view(k, *cols.shape[1:])
            return merged.view(k, *w.shape[1:]), avg.transpose(0, 1).contiguous()
        """,
        "sums the neurons instead of averaging": """
            one_hot = F.one_hot(labels, k).to(w.dtype)
            merged = one_hot.T @ w.flatten(1)
            cols = w_next.transpose(0, 1)
            summed = (one_hot.T @ cols.flatten(1)).view(k, *cols.shape[1:]).transpose(0, 1)
            return merged.view(k, *w.shape[1:]), summed.contiguous()
        """,
    },
    "fold_ar_scale": {
        "N_c instead of N_c^2 - N_c": """
            unit = F.normalize(w.flatten(1).double(), dim=1)
            one_hot = F.one_hot(labels, k).double()
            n_c = one_hot.sum(0)
            gram = one_hot.T @ (unit @ unit.T) @ one_hot
            e_c = (gram.diagonal() - n_c) / (n_c * n_c - n_c).clamp(min=1)
            return (n_c / torch.sqrt(n_c + n_c * e_c)).to(w.dtype)
        """,
        "mean correlation includes i == j": """
            unit = F.normalize(w.flatten(1).double(), dim=1)
            one_hot = F.one_hot(labels, k).double()
            n_c = one_hot.sum(0)
            e_c = (one_hot.T @ unit).norm(dim=1) ** 2 / (n_c * n_c)
            return (n_c / torch.sqrt(n_c + (n_c * n_c - n_c) * e_c)).to(w.dtype)
        """,
        "no square root": """
            unit = F.normalize(w.flatten(1).double(), dim=1)
            one_hot = F.one_hot(labels, k).double()
            n_c = one_hot.sum(0)
            return (n_c / (one_hot.T @ unit).norm(dim=1) ** 2).to(w.dtype)
        """,
    },
    "obd_saliency": {
        "forgets the 1/2": """
            hessian = torch.autograd.functional.hessian(loss_fn, w.detach())
            return torch.diagonal(hessian) * w.detach() ** 2
        """,
        "uses |w| instead of w^2": """
            hessian = torch.autograd.functional.hessian(loss_fn, w.detach())
            return 0.5 * torch.diagonal(hessian) * w.detach().abs()
        """,
        "gradient instead of Hessian": """
            w = w.detach().requires_grad_(True)
            grad, = torch.autograd.grad(loss_fn(w), w)
            return 0.5 * grad.abs() * w.detach() ** 2
        """,
    },
    "eie_encode": {
        "row-major stream": """
            cols = w.shape[1]
            encoded = []
            for pe in range(n_pe):
                sub = w.detach()[pe::n_pe]
                values, rel, per_col, run = [], [], [0] * cols, 0
                for pos, v in enumerate(sub.reshape(-1).tolist()):
                    if v == 0 and run < max_run:
                        run += 1
                        continue
                    values.append(v)
                    rel.append(run)
                    per_col[pos % cols] += 1
                    run = 0
                encoded.append((torch.tensor(values, dtype=w.dtype), torch.tensor(rel, dtype=torch.long),
                                torch.tensor([0] + per_col).cumsum(0)))
            return encoded
        """,
        "relative index restarts at every column": """
            cols = w.shape[1]
            encoded = []
            for pe in range(n_pe):
                sub = w.detach()[pe::n_pe]
                values, rel, per_col = [], [], [0] * cols
                for col in range(cols):
                    run = 0
                    for v in sub[:, col].tolist():
                        if v == 0 and run < max_run:
                            run += 1
                            continue
                        values.append(v)
                        rel.append(run)
                        per_col[col] += 1
                        run = 0
                encoded.append((torch.tensor(values, dtype=w.dtype), torch.tensor(rel, dtype=torch.long),
                                torch.tensor([0] + per_col).cumsum(0)))
            return encoded
        """,
        "contiguous rows per PE instead of interleaved": """
            cols, per_pe = w.shape[1], -(-w.shape[0] // n_pe)
            encoded = []
            for pe in range(n_pe):
                sub = w.detach()[pe * per_pe:(pe + 1) * per_pe]
                values, rel, per_col, run = [], [], [0] * cols, 0
                for pos, v in enumerate(sub.t().reshape(-1).tolist()):
                    if v == 0 and run < max_run:
                        run += 1
                        continue
                    values.append(v)
                    rel.append(run)
                    per_col[pos // max(1, sub.shape[0])] += 1
                    run = 0
                encoded.append((torch.tensor(values, dtype=w.dtype), torch.tensor(rel, dtype=torch.long),
                                torch.tensor([0] + per_col).cumsum(0)))
            return encoded
        """,
    },
    "eie_matvec": {
        "visits every column": """
            b = torch.zeros(rows, dtype=encoded[0][0].dtype)
            macs = 0
            for pe, (values, rel, col_ptr) in enumerate(encoded):
                local_rows = len(range(pe, rows, n_pe))
                if local_rows == 0 or len(values) == 0:
                    continue
                local_row = (torch.cumsum(rel + 1, 0) - 1) % local_rows
                for j in range(len(a)):
                    lo, hi = int(col_ptr[j]), int(col_ptr[j + 1])
                    b.index_add_(0, pe + n_pe * local_row[lo:hi], values[lo:hi] * a[j])
                    macs += hi - lo
            return b, macs
        """,
        "positions without the +1 per entry": """
            b = torch.zeros(rows, dtype=encoded[0][0].dtype)
            macs = 0
            active = torch.nonzero(a).flatten().tolist()
            for pe, (values, rel, col_ptr) in enumerate(encoded):
                local_rows = len(range(pe, rows, n_pe))
                if local_rows == 0 or len(values) == 0:
                    continue
                local_row = torch.cumsum(rel, 0) % local_rows
                for j in active:
                    lo, hi = int(col_ptr[j]), int(col_ptr[j + 1])
                    b.index_add_(0, pe + n_pe * local_row[lo:hi], values[lo:hi] * a[j])
                    macs += hi - lo
            return b, macs
        """,
    },
    "huffman_lengths": {
        "fixed-length code": """
            used = counts > 0
            bits = max(1, (int(used.sum()) - 1).bit_length())
            return torch.where(used, torch.tensor(bits), torch.tensor(0)).long()
        """,
        "rounded -log2 of the frequency": """
            p = counts.double() / counts.sum()
            return torch.where(counts > 0, torch.ceil(-torch.log2(p)).clamp(min=1), torch.zeros_like(p)).long()
        """,
    },
    "share_weights": {
        "random (quantile) initialisation": """
            init = torch.quantile(nonzero, torch.linspace(0, 1, n_clusters + 2)[1:-1].to(nonzero.dtype))[:, None]
            codebook, indices = kmeans(nonzero[:, None], init, n_iter)
            codebook = codebook[:, 0]
            shared = torch.zeros_like(w.detach()).flatten()
            shared[w.detach().flatten() != 0] = codebook[indices]
            return codebook, indices, shared.view_as(w)
        """,
        "clusters the zeros too": """
            flat = w.detach().flatten()
            init = torch.linspace(float(flat.min()), float(flat.max()), n_clusters, dtype=w.dtype)[:, None]
            codebook, indices = kmeans(flat[:, None], init, n_iter)
            codebook = codebook[:, 0]
            return codebook, indices[flat != 0], codebook[indices].view_as(w)
        """,
    },
    # The kernel exercise: the body of the solution's region (the C inside `// ### BEGIN SOLUTION` ...
    # `// ### END SOLUTION`; the signature, t and the `t >= n_nz` return stay) with one mistake.
    "spmv_queue_src": {
        "forgets the queue: column t instead of nz_cols[t]": """
            for (int p = col_ptr[t]; p < col_ptr[t + 1]; ++p) atomicAdd(&y[row_idx[p]], vals[p] * nz_vals[t]);
        """,
        "plain += instead of atomicAdd": """
            int j = nz_cols[t];
            for (int p = col_ptr[j]; p < col_ptr[j + 1]; ++p) y[row_idx[p]] += vals[p] * nz_vals[t];
        """,
    },
}
