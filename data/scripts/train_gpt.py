"""Train the course's character-level ReLU GPT on the Austen training text: data/checkpoints/gpt.pt + gpt.json.

    python data/scripts/train_gpt.py && python data/scripts/make_manifest.py

Records the validation loss (nats/char) on the held-out validation text and the fraction of exactly-zero FFN
activations per layer on it.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import trange

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tinyml_lib.data import CharTokenizer, austen_text  # noqa: E402
from tinyml_lib.gpt import GPT, GPTConfig, batches, evaluate_loss  # noqa: E402

STEPS, BATCH, LR, SEED = 800, 32, 2e-3, 0


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    tok = CharTokenizer()
    train = torch.from_numpy(tok.encode(austen_text("train")))
    val = torch.from_numpy(tok.encode(austen_text("val")))
    cfg = GPTConfig(vocab_size=tok.vocab_size)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=STEPS)
    stream, start = batches(train, cfg.ctx, BATCH, torch.Generator().manual_seed(SEED)), time.perf_counter()
    model.train()
    for _ in trange(STEPS, desc="gpt", mininterval=10):
        x, y = next(stream)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    probe = val[:64 * cfg.ctx].view(64, cfg.ctx)
    record = {"model": "gpt", "config": asdict(cfg), "params": sum(p.numel() for p in model.parameters()),
              "recipe": {"steps": STEPS, "batch_size": BATCH, "lr": LR, "seed": SEED, "optimizer": "AdamW one-cycle"},
              "train_seconds": round(seconds, 1), "val_loss": round(evaluate_loss(model, val), 4),
              "ffn_zero_fraction": [round(f, 4) for f in model.eval().ffn_zero_fraction(probe)],
              "command": "python data/scripts/train_gpt.py"}
    out = ROOT / "data" / "checkpoints"
    torch.save(model.state_dict(), out / "gpt.pt")
    (out / "gpt.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
