"""Plausible wrong answers for Lab 05's exercises: each must lose points (tests/test_labs.py runs them). They are
edits of the reference answer, (old, new) pairs (autograders/mutation.py's `mutate`)."""

MUTANTS = {
    "softmax_with_temperature": {
        "the temperature multiplies": ("scaled = z / temperature", "scaled = z * temperature"),
        "no maximum subtracted (overflows)": (
            "e = torch.exp(scaled - scaled.amax(dim=-1, keepdim=True))", "e = torch.exp(scaled)"),
        "normalised over the first dimension": (
            "return e / e.sum(dim=-1, keepdim=True)", "return e / e.sum(dim=0, keepdim=True)"),
    },
    "kd_loss": {
        "no T^2 factor": ("        soft = soft * temperature ** 2\n", ""),
        "KL the wrong way round (student || teacher)": (
            "soft = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()",
            "soft = (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()"),
        "the mean over classes too (not batchmean)": (
            "soft = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()",
            "soft = (log_p.exp() * (log_p - log_q)).mean()"),
        "the hard term at temperature T": (
            "F.cross_entropy(student_logits, labels)", "F.cross_entropy(student_logits / temperature, labels)"),
        "T^2 applied whatever scale_t2 says": ("    if scale_t2:\n        soft", "    if True:\n        soft"),
        "gradients flow into the teacher": (
            "log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=1)",
            "log_p = F.log_softmax(teacher_logits / temperature, dim=1)"),
    },
    "attention_map": {
        "no normalisation": (
            "return F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=1)",
            "return features.pow(2).sum(dim=1).flatten(1)"),
        "absolute values, not squares": (
            "features.pow(2).sum(dim=1)", "features.abs().sum(dim=1)"),
        "normalised over the batch": (
            "F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=1)",
            "F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=0)"),
        "summed over space, kept per channel": (
            "return F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=1)",
            "return F.normalize(features.pow(2).flatten(2).sum(dim=2), dim=1)"),
    },
    "fitnet_hint_loss": {
        "no regressor (the teacher's first channels)": (
            "F.mse_loss(regressor(student_features), teacher_features.detach())",
            "F.mse_loss(student_features, teacher_features.detach()[:, :student_features.shape[1]])"),
        "summed, not averaged": (
            "F.mse_loss(regressor(student_features), teacher_features.detach())",
            "F.mse_loss(regressor(student_features), teacher_features.detach(), reduction='sum')"),
        "gradients flow into the teacher": ("teacher_features.detach())", "teacher_features)"),
    },
    "softmax_kl_src": {
        "no rescaling when the teacher's maximum grows": (
            "      v.st *= f;\n      v.w *= f;\n", ""),
        "lanes not merged (each warp's lane 0 alone)": (
            "  for (int off = 16; off > 0; off >>= 1)\n    v = merge(v, shfl_xor_state(v, off));\n", ""),
        "the warps' states not merged (warp 0 alone)": (
            "    for (int k = 1; k < WARPS; ++k)\n      r = merge(r, warp_states[k]);\n", ""),
        "no __syncthreads before thread 0 reads the warps' states": ("  __syncthreads();\n", ""),
        "the student's normaliser left out": (
            "kl[blockIdx.x] = r.w / r.st - (r.mt + logf(r.st)) + (r.ms + logf(r.ss));",
            "kl[blockIdx.x] = r.w / r.st - (r.mt + logf(r.st)) + r.ms;"),
        "a second pass over the row for the student": [
            ("    if (b > v.ms) {\n      v.ss *= v.ms == NEG_INF ? 0.0f : expf(v.ms - b);\n      v.ms = b;\n    }\n"
             "    v.ss += expf(b - v.ms);\n", ""),
            ("  for (int off = 16; off > 0; off >>= 1)\n    v = merge(v, shfl_xor_state(v, off));\n",
             "  for (int i = threadIdx.x; i < n; i += BLOCK) {\n    const float b = sr[i] * inv_T;\n"
             "    if (b > v.ms) {\n      v.ss *= v.ms == NEG_INF ? 0.0f : expf(v.ms - b);\n      v.ms = b;\n    }\n"
             "    v.ss += expf(b - v.ms);\n  }\n"
             "  for (int off = 16; off > 0; off >>= 1)\n    v = merge(v, shfl_xor_state(v, off));\n")],
    },
}
