#!/usr/bin/env python3
"""Validation loss of a RingTrain language-model checkpoint measured exactly as
../shared/anchors/torch_seq.py measures its own: the 20 batches of 32 windows drawn with
torch.Generator seed 1 from the last 10% of the fortunes bytes. The checkpoint comes as
`ringtrain export-model CKPT --out FILE` and runs in its torch.nn twin (torch_modules.py,
loaded with strict=True), so both sides are scored on the same tokens.

  /opt/anchor-venv/bin/python scripts/bench/anchor_val.py EXPORT.safetensors"""
import json, math, os, sys
import numpy as np, torch, torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from torch_modules import build

path = sys.argv[1]
with safe_open(path, "pt") as h:
    spec = json.loads(h.metadata()["blocks_spec"])
tensors = load_file(path)
model, _ = build(spec["layers"], spec["input"])
model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("__")}, strict=True)
model.eval()
ctx, batch = spec["input"][0], 32
root = "/usr/share/games/fortunes"
files = sorted(f for f in os.listdir(root) if "." not in f and os.path.isfile(os.path.join(root, f)))
data = np.frombuffer(b"".join(open(os.path.join(root, f), "rb").read() for f in files), dtype=np.uint8)
val = torch.from_numpy(data[int(len(data) * 0.9):].astype(np.int64))
g = torch.Generator().manual_seed(1)
tot = 0.0
with torch.no_grad():
    for _ in range(20):
        ix = torch.randint(0, len(val) - ctx - 1, (batch,), generator=g)
        x = torch.stack([val[i:i + ctx] for i in ix]); y = torch.stack([val[i + 1:i + ctx + 1] for i in ix])
        tot += F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1)).item()
vl = tot / 20
print(f"RESULT anchor-validation of {os.path.basename(path)}: val_loss={vl:.4f} bits_per_byte={vl / math.log(2):.4f}")
