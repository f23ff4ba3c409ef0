"""PyTorch twin for elastic recovery: how long torchrun takes to bring a DDP (gloo, CPU) group back
after one worker is SIGKILLed, and how many steps are lost, to compare with RingTrain's own recovery.
Model and data as ../../../shared/anchors/torch_ddp.py (Fashion-MNIST MLP, per-epoch permutation
seeded by the epoch, rank r takes slice r of each global batch, SGD lr 0.05*world momentum 0.9).

worker (what torchrun runs):
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nproc-per-node 3 --max-restarts 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:29611 \\
      elastic_torch.py worker --ckpt-dir D --checkpoint-every K --epochs E --batch 64
  Rank 0 saves D/latest.pt (model, optimizer, step, epoch, position) every K global steps (tmp +
  os.replace) and every start resumes from it. Output: `PID <rank> <pid>` per worker, and from rank 0
  `RESUMED <step>` (on a restart, or when a checkpoint was found), `STEP <step> <unix time>` per
  step, `DONE <step> test_acc=<acc>`.
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 is needed for the restart to work: by default (torch 2.15) the
  workers' process group uses the agent's rendezvous TCPStore, which outlives the restart with the dead
  group's gloo addresses under the same keys, so the new group's init fails with "Gloo connectFullMesh
  failed ... Connection refused" (pytorch/pytorch#135712). With it, rank 0 hosts a fresh store per round.
drive (runs torchrun as above on a fresh temporary D, SIGKILLs local rank world-1 at step S):
  /opt/anchor-venv/bin/python scripts/bench/elastic_torch.py drive --workers 3 --kill-at-step 30 \\
      --checkpoint-every 20 --epochs 1 [--batch 64] [--port 29611] [--timeout 570] [--agent-store]
  prints RESULT torchrun recovery_s=.. steps_lost=.. resumed_from=.. killed_at=.. final_test_acc=.. total_s=..
  recovery_s = first STEP after RESUMED - kill time; steps_lost = last STEP printed (by its time stamp) before the kill - resumed step;
  killed_at = the step whose line triggered the kill."""
import argparse, os, queue, shutil, signal, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

def worker(a):
    import ctypes, torch, torch.nn as nn, torch.distributed as dist
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with torchrun
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "anchors"))
    import fmnist, models
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    print(f"PID {rank} {os.getpid()}", flush=True)
    torch.set_num_threads(max(1, 2 // world)); torch.manual_seed(0)
    dist.init_process_group("gloo")
    xtr, ytr = fmnist.load("train"); xte, yte = fmnist.load("t10k")
    m, s = xtr.mean(), xtr.std()
    xtr = torch.from_numpy((xtr - m) / s); xte = torch.from_numpy((xte - m) / s); ytr = torch.from_numpy(ytr); yte = torch.from_numpy(yte)
    net = models.build("mlp")
    opt = torch.optim.SGD(net.parameters(), lr=0.05 * world, momentum=0.9)
    path = os.path.join(a.ckpt_dir, "latest.pt"); step = 0; restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if os.path.exists(path):  # every rank loads the same file, so DDP's initial broadcast is a no-op
        ck = torch.load(path, map_location="cpu")
        net.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); step = ck["step"]
    if rank == 0 and (restarted or step): print(f"RESUMED {step}", flush=True)
    model = nn.parallel.DistributedDataParallel(net)
    lossf = nn.CrossEntropyLoss(); n = xtr.shape[0]; gb = a.batch * world; per_epoch = n // gb
    for ep in range(step // per_epoch, a.epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(ep))
        for pos in range(step - ep * per_epoch, per_epoch):
            i = pos * gb; idx = perm[i + rank * a.batch: i + (rank + 1) * a.batch]
            opt.zero_grad(set_to_none=True); lossf(model(xtr[idx]), ytr[idx]).backward(); opt.step(); step += 1
            if rank == 0:
                print(f"STEP {step} {time.time():.6f}", flush=True)
                if step % a.checkpoint_every == 0:
                    torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                                "epoch": step // per_epoch, "position": step % per_epoch}, path + ".tmp")
                    os.replace(path + ".tmp", path)
    if rank == 0:
        with torch.no_grad(): acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"DONE {step} test_acc={acc:.4f}", flush=True)
    dist.barrier(); dist.destroy_process_group()

def alive_worker(pid):  # guards against signalling a recycled pid
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f: return b"elastic_torch.py" in f.read()
    except OSError: return False

def drive(a):
    t_start = time.time(); deadline = t_start + a.timeout; ckdir = tempfile.mkdtemp(prefix="elastic_torch_")
    cmd = [TORCHRUN, "--nproc-per-node", str(a.workers), "--max-restarts", "1", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{a.port}", "--monitor-interval", str(a.monitor_interval),
           os.path.abspath(__file__), "worker", "--ckpt-dir", ckdir, "--checkpoint-every", str(a.checkpoint_every),
           "--epochs", str(a.epochs), "--batch", str(a.batch)]
    env = dict(os.environ) if a.agent_store else dict(os.environ, TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    print("+", *([] if a.agent_store else ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"]), *cmd, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: ([lines.put(l) for l in proc.stdout], lines.put(None)), daemon=True).start()
    pids, seen = {}, set(); kill_t = last_before = resumed = recovered_t = acc = kill_step = None
    def show(text):  # after the kill, lines carry the time they were read, relative to the kill
        print(f"[+{time.time() - kill_t:7.3f}s] {text}" if kill_t else text, flush=True)
    try:
        while True:
            try: line = lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty: raise SystemExit(f"timeout after {a.timeout}s")
            if line is None: break
            w = line.split()
            if not w or w[0] not in ("PID", "STEP", "RESUMED", "DONE"): show("  | " + line.rstrip()); continue
            if w[0] == "PID": pids[int(w[1])] = int(w[2]); seen.add(int(w[2])); show(line.rstrip())
            elif w[0] == "RESUMED" and kill_t is not None and resumed is None: resumed = int(w[1]); show(line.rstrip())
            elif w[0] == "STEP":
                if resumed is None and (kill_t is None or float(w[2]) <= kill_t): last_before = int(w[1])
                if resumed is not None and recovered_t is None: recovered_t = float(w[2]); show(line.rstrip())
                if kill_t is None and int(w[1]) >= a.kill_at_step:
                    victim = pids[a.workers - 1]; os.kill(victim, signal.SIGKILL); kill_t = time.time(); kill_step = int(w[1])
                    show(f"KILL rank {a.workers - 1} pid {victim} at step {kill_step} t={kill_t:.6f}")
            elif w[0] == "DONE": acc = w[2].split("=")[1]; show(line.rstrip())
        rc = proc.wait(timeout=max(1.0, deadline - time.time()))
        if kill_t is None or recovered_t is None or acc is None: raise SystemExit(f"incomplete run (torchrun rc={rc})")
        print(f"RESULT torchrun recovery_s={recovered_t - kill_t:.3f} steps_lost={last_before - resumed} resumed_from={resumed} "
              f"killed_at={kill_step} final_test_acc={acc} total_s={time.time() - t_start:.1f}", flush=True)
    finally:
        if proc.poll() is None:  # torchrun forwards SIGTERM to its workers; then force
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(timeout=15)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        for pid in seen:
            if alive_worker(pid): os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ckdir, ignore_errors=True)

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("worker", "drive"))
    p.add_argument("--ckpt-dir"); p.add_argument("--checkpoint-every", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1); p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=3); p.add_argument("--kill-at-step", type=int, default=30)
    p.add_argument("--port", type=int, default=29611); p.add_argument("--monitor-interval", type=float, default=0.1)
    p.add_argument("--agent-store", action="store_true", help="keep torchrun's default shared rendezvous store (fails on restart, see above)")
    p.add_argument("--timeout", type=float, default=570.0, help="seconds for the whole drive (default 570)")
    a = p.parse_args()
    worker(a) if a.mode == "worker" else drive(a)
