"""PyTorch reference timings for the CIFAR ResNet (He et al. 2016, depth 6n+2), eager vs
torch.compile.

What it measures: images/s of a full training step (forward, cross-entropy, backward, SGD with
momentum 0.9, weight decay 1e-4, lr 0.1) of the same network as `cnn_depth.models.cifar_resnet` with
option-A shortcuts, on a synthetic CIFAR batch that already lives on the device, in PyTorch eager
mode and with `torch.compile`, in the same run, so that the JAX/eager/compile ratios are measured
rather than quoted. For each (depth, mode) it reports the median over `--repeats` runs of `--iters`
steps, the time of the first compiled step (compile_s) and the peak allocated memory. Parameter
counts are asserted to match ours (ResNet-20 269,722; 56 853,018; 110 1,727,962; 1202 19,421,274).

Optional: PyTorch is not a dependency of `cnn_depth`; run this only where torch is installed, e.g.
on the GPU machine:

    python benchmarks/torch_reference.py --depths 20,56,110 --out results/benchmarks/torch_h100.json

Quick CPU smoke test:

    python benchmarks/torch_reference.py --device cpu --depths 20 --batch 8 --iters 2 --repeats 1 \
        --warmup 1 --modes eager
    python benchmarks/torch_reference.py --check_params   # builds 20/56/110/1202 on CPU, no run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EXPECTED_PARAMS = {20: 269_722, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}


def conv3x3(cin, cout, stride=1):
  return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def bn(c):
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class BasicBlock(nn.Module):
  """conv3x3-BN-ReLU-conv3x3-BN, + option-A shortcut (none in the plain twin), ReLU."""

  def __init__(self, cin, cout, stride, residual=True):
    super().__init__()
    self.conv1, self.bn1 = conv3x3(cin, cout, stride), bn(cout)
    self.conv2, self.bn2 = conv3x3(cout, cout), bn(cout)
    self.stride, self.extra, self.residual = stride, cout - cin, residual

  def shortcut(self, x):
    # Option A: subsample by the stride, zero-pad channels evenly on both sides (parameter-free).
    if self.stride > 1:
      x = x[:, :, :: self.stride, :: self.stride]
    if self.extra:
      lo = self.extra // 2
      x = F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))
    return x

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + self.shortcut(x) if self.residual else y)


class CifarResNet(nn.Module):
  """He et al.'s CIFAR ResNet (option A); `residual=False` is its plain twin (cnn_depth's
  cifar_plain)."""

  def __init__(self, depth, num_classes=10, residual=True, in_channels=3, width=16):
    super().__init__()
    if (depth - 2) % 6:
      raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    self.conv1, self.bn1 = conv3x3(in_channels, width), bn(width)
    blocks, cin = [], width
    for stage, cout in enumerate((width, 2 * width, 4 * width)):
      for b in range(n):
        blocks.append(BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1, residual))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.fc = nn.Linear(4 * width, num_classes)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    x = self.blocks(x)
    return self.fc(x.mean(dim=(2, 3)))


def build_model(depth, **kw):
  model = CifarResNet(depth, **kw)
  n_params = sum(p.numel() for p in model.parameters())
  if depth in EXPECTED_PARAMS and not kw:
    assert n_params == EXPECTED_PARAMS[depth], (depth, n_params, EXPECTED_PARAMS[depth])
  return model, n_params


def sync(device):
  if device.type == "cuda":
    torch.cuda.synchronize(device)


def bench_one(depth, mode, args, device):
  """Returns a record dict for one (depth, mode)."""
  dtype_name = "bfloat16" if args.dtype == "bf16" else "float32"
  rec = dict(
    device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    what="step",
    framework=f"torch-{mode}",
    family="cifar_resnet",
    depth=depth,
    batch=args.batch,
    dtype=dtype_name,
    images_per_sec=None,
    compile_s=None,
    peak_mem_gb=None,
    torch_version=torch.__version__,
    date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
    channels_last=args.channels_last,
    skipped=None,
  )
  if mode == "compile" and depth > args.compile_max_depth:
    rec["skipped"] = f"depth {depth} > --compile_max_depth {args.compile_max_depth}"
    return rec

  torch.manual_seed(0)
  fmt = torch.channels_last if args.channels_last else torch.contiguous_format
  model, _ = build_model(depth)
  model = model.to(device, memory_format=fmt).train()
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
  fwd = torch.compile(model) if mode == "compile" else model
  x = torch.randn(args.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
  y = torch.randint(0, 10, (args.batch,), device=device)
  use_amp = args.dtype == "bf16"

  def step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
      loss = F.cross_entropy(fwd(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

  if device.type == "cuda":
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
  try:
    sync(device)
    t0 = time.perf_counter()
    step()  # first step: includes compilation in compile mode
    sync(device)
    if mode == "compile":
      rec["compile_s"] = time.perf_counter() - t0
    for _ in range(max(args.warmup - 1, 0)):
      step()
    sync(device)
  except Exception as e:  # noqa: BLE001  (a failing compile is recorded, not fatal)
    if mode != "compile":
      raise
    rec["skipped"] = f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return rec

  rates = []
  for _ in range(args.repeats):
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.iters):
      step()
    sync(device)
    rates.append(args.iters * args.batch / (time.perf_counter() - t0))
  rec["images_per_sec"] = statistics.median(rates)
  rec["images_per_sec_runs"] = rates
  if device.type == "cuda":
    rec["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
  return rec


def serve(spec: dict):
  """The PyTorch side of `scripts/benchmark_vs_torch.py`: build the net `spec` names, train it on a
  synthetic float32 batch for `spec['warmup']` steps, print one JSON line (ready), then for each
  line N read from stdin run N steps and print {"seconds": ...}; an empty line or EOF ends."""
  import sys

  torch.set_num_threads(spec["threads"])
  torch.manual_seed(0)
  fmt = torch.channels_last if spec["channels_last"] else torch.contiguous_format
  model, n_params = build_model(
    spec["depth"], residual=spec["residual"], in_channels=spec["in_channels"]
  )
  model = model.to(memory_format=fmt).train()
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
  size = spec["image_size"]
  x = torch.randn(spec["batch"], spec["in_channels"], size, size).contiguous(memory_format=fmt)
  y = torch.randint(0, spec["classes"], (spec["batch"],))

  def steps(n):
    t0 = time.perf_counter()
    for _ in range(n):
      loss = F.cross_entropy(model(x), y)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
    return time.perf_counter() - t0

  warm = steps(spec["warmup"])
  ready = dict(ready=True, params=n_params, torch_version=torch.__version__, warmup_s=warm)
  print(json.dumps(dict(ready, threads=torch.get_num_threads())), flush=True)
  for line in sys.stdin:
    if not line.strip():
      break
    print(json.dumps({"seconds": steps(int(line))}), flush=True)


def fmt_row(r):
  f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
  rate = f"skipped: {r['skipped']}" if r["skipped"] else f(r["images_per_sec"], ",.0f")
  return (
    f"| {r['framework']} | {r['depth']} | {r['batch']} | {r['dtype']} | {rate} | "
    f"{f(r['compile_s'], '.1f')} | {f(r['peak_mem_gb'], '.2f')} |"
  )


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--depths", default="20,56,110,1202")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
  p.add_argument("--modes", default="eager,compile")
  p.add_argument("--warmup", type=int, default=20)
  p.add_argument("--iters", type=int, default=100)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default=None, help="optional JSON path for the list of records")
  p.add_argument(
    "--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu"
  )
  p.add_argument("--compile_max_depth", type=int, default=110)
  p.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
  p.add_argument(
    "--check_params",
    action="store_true",
    help="only build every depth in EXPECTED_PARAMS on CPU and check parameter counts",
  )
  p.add_argument("--serve", default="", help="internal: the PyTorch side of benchmark_vs_torch")
  args = p.parse_args()
  if args.serve:
    return serve(json.loads(args.serve))

  if args.check_params:
    for depth in EXPECTED_PARAMS:
      print(f"ResNet-{depth}: {build_model(depth)[1]:,} parameters (ok)")
    return

  depths = [int(d) for d in args.depths.split(",") if d]
  modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  assert set(modes) <= {"eager", "compile"}, modes
  device = torch.device(args.device)
  if device.type == "cuda":
    torch.backends.cudnn.benchmark = True

  print(f"torch {torch.__version__} on {args.device}, channels_last={args.channels_last}")
  print("| framework | depth | batch | dtype | images/s | compile s | peak GB |")
  print("|---|---|---|---|---|---|---|")
  records = []
  for depth in depths:
    for mode in modes:
      rec = bench_one(depth, mode, args, device)
      records.append(rec)
      print(fmt_row(rec), flush=True)
      if mode == "compile":
        torch._dynamo.reset()

  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
      json.dump(records, fh, indent=2)
    print(f"wrote {len(records)} records to {args.out}")


if __name__ == "__main__":
  main()
