"""PyTorch DistributedDataParallel (gloo, CPU) twin of /work/shared/anchors/torch_seq.py: the same
byte-level language models on the Debian `fortunes` text (/usr/share/games/fortunes, every file
without an extension, concatenated in name order; last 10% held out for validation), trained by
WORKERS local processes that each take GLOBAL_BATCH/WORKERS windows per step and all-reduce gradients.

usage: python torch_seq_ddp.py {gpt|lstm} STEPS [WORKERS=2] [THREADS_PER_WORKER=1] [GLOBAL_BATCH=32] [CONTEXT]
  gpt:  decoder-only Transformer, 4 layers, 4 heads, width 128, learned positions, GELU FFN 4x,
        pre-LN, tied embedding/head, vocab 256 (bytes); default context 128.
  lstm: embedding 128 → 2-layer LSTM (hidden 256) → linear 256; default context 64.
AdamW (lr 1e-3, betas 0.9/0.99, wd 0.1 on matrices), no dropout, init seed 0; rank r draws its
training windows from a generator seeded 0+r. Rendezvous on 127.0.0.1 at a free port. Rank 0 prints
tokens/s over the GLOBAL batch for the timed steps (the first 5 are warm-up; barrier before starting
and stopping the clock), and, after training, validation loss in nats and bits per byte on the same
20 validation batches of GLOBAL_BATCH windows (seed 1) as torch_seq.py."""
import math, os, socket, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
import torch.distributed as dist, torch.multiprocessing as mp

def load_fortunes():
    root = "/usr/share/games/fortunes"
    files = sorted(f for f in os.listdir(root) if "." not in f and os.path.isfile(os.path.join(root, f)))
    data = np.frombuffer(b"".join(open(os.path.join(root, f), "rb").read() for f in files), dtype=np.uint8)
    split = int(len(data) * 0.9)
    return torch.from_numpy(data[:split].astype(np.int64)), torch.from_numpy(data[split:].astype(np.int64))

def batch_of(src, g, batch, ctx):
    ix = torch.randint(0, len(src) - ctx - 1, (batch,), generator=g)
    x = torch.stack([src[i:i + ctx] for i in ix]); y = torch.stack([src[i + 1:i + ctx + 1] for i in ix])
    return x, y

class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h, batch_first=True, bias=True)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
    def forward(self, x, mask):
        a = self.ln1(x)
        x = x + self.attn(a, a, a, attn_mask=mask, need_weights=False, is_causal=True)[0]
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))

class GPT(nn.Module):
    def __init__(self, ctx, v=256, d=128, h=4, n=4):
        super().__init__()
        self.tok, self.pos = nn.Embedding(v, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(n))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, v, bias=False)
        self.head.weight = self.tok.weight
        self.register_buffer("mask", torch.triu(torch.full((ctx, ctx), float("-inf")), 1))
    def forward(self, x):
        t = x.shape[1]; z = self.tok(x) + self.pos(torch.arange(t))
        for b in self.blocks: z = b(z, self.mask[:t, :t])
        return self.head(self.ln(z))

class LSTMLM(nn.Module):
    def __init__(self, v=256, e=128, h=256, n=2):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(v, e), nn.LSTM(e, h, n, batch_first=True), nn.Linear(h, v)
    def forward(self, x): return self.head(self.rnn(self.emb(x))[0])

def run(rank, world, port, kind, steps, threads, gbatch, ctx):
    os.environ["MASTER_ADDR"] = "127.0.0.1"; os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    batch = gbatch // world
    torch.manual_seed(0)
    train, val = load_fortunes()
    net = GPT(ctx) if kind == "gpt" else LSTMLM()
    decay = [p for p in net.parameters() if p.dim() >= 2]; other = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    model = nn.parallel.DistributedDataParallel(net)
    g = torch.Generator().manual_seed(0 + rank)
    model.train(); t0 = None; t_timed = 0.0; timed = 0
    for s in range(steps):
        if s == 5: dist.barrier(); t0 = time.perf_counter()
        x, y = batch_of(train, g, batch, ctx)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1)); loss.backward(); opt.step()
        if s >= 5: timed += gbatch * ctx
        if s % 100 == 0:  # mean over ranks = loss of the global batch
            l = loss.detach().clone(); dist.all_reduce(l); l /= world
            if rank == 0: print(f"step {s} loss {l.item():.4f}", flush=True)
    if t0 is not None: dist.barrier(); t_timed = time.perf_counter() - t0
    if rank == 0:
        net.eval(); gv = torch.Generator().manual_seed(1); tot = 0.0
        with torch.no_grad():
            for _ in range(20):
                x, y = batch_of(val, gv, gbatch, ctx); tot += F.cross_entropy(net(x).reshape(-1, 256), y.reshape(-1)).item()
        vl = tot / 20
        print(f"DDP backend=gloo workers={world} threads_per_worker={torch.get_num_threads()} "
              f"per_rank_batch={batch} global_batch={gbatch}", flush=True)
        print(f"RESULT model={kind} threads={torch.get_num_threads()} batch={gbatch} context={ctx} "
              f"params={sum(p.numel() for p in net.parameters())} tokens_per_s={timed / max(t_timed, 1e-9):.0f} "
              f"val_loss={vl:.4f} bits_per_byte={vl / math.log(2):.4f} steps={steps}", flush=True)
    dist.barrier(); dist.destroy_process_group()

if __name__ == "__main__":
    a = sys.argv
    kind, steps = a[1], int(a[2])
    world = int(a[3]) if len(a) > 3 else 2
    threads = int(a[4]) if len(a) > 4 else 1
    gbatch = int(a[5]) if len(a) > 5 else 32
    ctx = int(a[6]) if len(a) > 6 else (128 if kind == "gpt" else 64)
    assert kind in ("gpt", "lstm") and gbatch % world == 0, "kind must be gpt|lstm, GLOBAL_BATCH divisible by WORKERS"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo's own sockets on loopback
    mp.spawn(run, args=(world, port, kind, steps, threads, gbatch, ctx), nprocs=world)
