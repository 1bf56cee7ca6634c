"""Benchmark records: the kernels a compiled step launches, and the tables of the timing records.

`count_kernels` reads XLA's optimised HLO text of a step (compiled for a GPU, with or without one)
and counts what one execution launches: fusions by kind, cuDNN/cuBLAS calls, copies, a while loop's
body times its trip count, and the host sync each loop iteration adds. The step is launch-bound at
batch 128 (benchmarks/NOTES.md), so the count is what a change to the step should move.
`write_reports` turns `scripts/benchmark.py`'s JSON-lines records into Markdown tables. `Server` and
`alternate` time two implementations in turns, each in its own process
(`scripts/benchmark_vs_torch.py`). No jax.
"""

from __future__ import annotations

import collections
import json
import os
import re
import statistics
import subprocess

# HLO instructions that launch nothing on a GPU (views, tuples, constants folded into kernels).
NO_KERNEL = {
  "parameter",
  "get-tuple-element",
  "tuple",
  "bitcast",
  "constant",
  "after-all",
  "add-dependency",
  "opt-barrier",
  "partition-id",
  "replica-id",
  "domain",
}


def parse_hlo(text: str) -> tuple[str, dict[str, list[tuple[str, str]]]]:
  """(entry name, {computation: [(opcode, instruction line)]}) of an HLO module's text."""
  comps: dict[str, list[tuple[str, str]]] = {}
  entry, current = None, None
  for line in text.splitlines():
    head = re.match(r"(ENTRY )?%([\w.\-]+) .*\{\s*$", line)
    if head and not line.startswith(" "):
      current = head.group(2)
      comps[current] = []
      entry = current if head.group(1) else entry
    elif line.startswith("}"):
      current = None
    elif current is not None:
      inst = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = (.*)$", line)
      if inst:
        comps[current].append((_opcode(inst.group(1)), line))
  if entry is None:
    raise ValueError("no ENTRY computation in this HLO text")
  return entry, comps


def _opcode(rhs: str) -> str:
  """The opcode of an instruction's right-hand side: what follows its (possibly tuple) shape."""
  if rhs.startswith("("):  # tuple shape: skip to its closing parenthesis
    depth = 0
    for i, ch in enumerate(rhs):
      depth += (ch == "(") - (ch == ")")
      if depth == 0:
        break
    rhs = rhs[i + 1 :]
  else:
    rhs = rhs.split(" ", 1)[1]
  return re.match(r"\s*([\w\-]+)", rhs).group(1)


def count_kernels(hlo_text: str) -> dict:
  """Kernels one execution of an optimised XLA:GPU module launches, by kind.

  Every instruction outside NO_KERNEL is one launch: a fusion (by its kind: kLoop elementwise,
  kInput reductions and transposes, kCustom Triton/cuDNN fusions), a custom call (cuDNN convolution,
  cuBLAS gemm, by target), a copy. A while loop counts its body times its known trip count, and its
  condition once per iteration plus one, each a device-to-host sync ('loop_syncs'); calls and
  conditionals count their computations once.
  """
  entry, comps = parse_hlo(hlo_text)
  kinds: collections.Counter = collections.Counter()

  def walk(name: str, times: int):
    for op, line in comps[name]:
      if op in NO_KERNEL:
        continue
      if op == "while":
        trip = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
        if trip is None:
          raise ValueError(f"a while loop without a known trip count: {line.strip()[:200]}")
        n = int(trip.group(1))
        walk(re.search(r"body=%([\w.\-]+)", line).group(1), times * n)
        kinds["loop_syncs"] += times * (n + 1)
      elif op in ("call", "conditional"):
        for callee in re.findall(
          r"(?:to_apply=|calls=|branch_computations=\{|, )%([\w.\-]+)", line
        ):
          walk(callee, times)
      elif op == "fusion":
        kinds["fusion_" + re.search(r"kind=(\w+)", line).group(1)] += times
      elif op == "custom-call":
        target = re.search(r'custom_call_target="([^"]+)"', line).group(1)
        kinds["conv" if "conv" in target.lower() else target] += times
      else:
        kinds[op] += times

  walk(entry, 1)
  syncs = kinds.pop("loop_syncs", 0)
  return {"kernels": sum(kinds.values()), "loop_syncs": syncs, "kernels_by_kind": dict(kinds)}


HEADER = (
  "| what | family | depth | batch | dtype | stages | images/s | step ms | compile s | peak GB "
  "| loop share |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


KERNEL_HEADER = (
  "| program | family | depth | batch | dtype | stages | block norms | kernels | conv "
  "| reductions | elementwise | other | loop syncs | compile s (host) |\n"
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


class Server:
  """One side of a timed comparison in its own process: it prints a JSON line when ready (with
  `warmup_s` for the warm-up steps), then answers each line N on its stdin with {"seconds": ...}
  for N steps. Anything else it prints that is not JSON is passed over."""

  def __init__(self, argv: list[str]):
    self.argv = argv
    self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.ready = self._answer()

  def _answer(self) -> dict:
    for line in self.proc.stdout:
      if line.startswith("{"):
        return json.loads(line)
    raise RuntimeError(
      f"{' '.join(self.argv[:2])} ended (exit {self.proc.wait()}) without answering"
    )

  def seconds(self, steps: int) -> float:
    self.proc.stdin.write(f"{steps}\n")
    self.proc.stdin.flush()
    return self._answer()["seconds"]

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.write("\n")
      self.proc.stdin.close()
    self.proc.wait()


def alternate(sides: dict, batch: int, warmup: int, repeats: int, seconds: float) -> dict:
  """Images/s of each side, `repeats` rounds taken in turns (A B A B ...), each round about
  `seconds` long (its step count from the side's warm-up)."""
  steps = {
    name: max(1, round(seconds * warmup / max(side.ready["warmup_s"], 1e-9)))
    for name, side in sides.items()
  }
  rates = {name: [] for name in sides}
  for _ in range(repeats):
    for name, side in sides.items():
      rates[name].append(steps[name] * batch / side.seconds(steps[name]))
  return rates


def ratio_summary(ours: list[float], theirs: list[float]) -> dict:
  """Medians of both, their ratio (ours / theirs) and the range of the round-by-round ratios."""
  rounds = [a / b for a, b in zip(ours, theirs)]
  return dict(
    images_per_sec=statistics.median(ours),
    images_per_sec_all=ours,
    torch_images_per_sec=statistics.median(theirs),
    torch_images_per_sec_all=theirs,
    ratio=statistics.median(ours) / statistics.median(theirs),
    ratio_min=min(rounds),
    ratio_max=max(rounds),
  )


VS_TORCH_HEADER = (
  "| net | input | batch | cnn_depth images/s | PyTorch images/s | ratio | ratio per round | "
  "PyTorch layout, threads |\n|---|---|---|---|---|---|---|---|"
)


def vs_torch_row(r: dict) -> str:
  net = f"{'ResNet' if r['family'] == 'cifar_resnet' else 'plain'}-{r['depth']}"
  layout = "channels-last" if r["torch_channels_last"] else "NCHW"
  return (
    f"| {net} | {r['inputs']} | {r['batch']} | {r['images_per_sec']:,.0f} | "
    f"{r['torch_images_per_sec']:,.0f} | **{r['ratio']:.2f}** | {r['ratio_min']:.2f}-"
    f"{r['ratio_max']:.2f} | {layout}, {r['torch_threads']} |"
  )


def header(record: dict) -> str:
  """The Markdown table header a record's row goes under."""
  return KERNEL_HEADER if record["what"] == "kernels" else HEADER


def record_file(record: dict) -> str:
  """The .jsonl a record belongs to: one per device, and kernels_<target> for kernel counts."""
  if record["what"] == "kernels":
    return f"kernels_{record['target']}.jsonl"
  if record["what"] == "vs_torch":
    return record["device"].replace(" ", "_").lower() + "_vs_torch.jsonl"
  return record["device"].replace(" ", "_").lower() + ".jsonl"


def write_reports(out_dir: str):
  """<name>.md for each <name>.jsonl: one table per tag (XLA flags / experiment), in record
  order."""
  for name in sorted(os.listdir(out_dir)):
    if not name.endswith(".jsonl"):
      continue
    with open(os.path.join(out_dir, name)) as f:
      records = [json.loads(line) for line in f if line.strip()]
    by_tag = {}
    for r in records:
      by_tag.setdefault(r.get("tag") or "untagged", []).append(r)
    lines, header, row = _report_intro(records[0], name)
    for tag, rs in by_tag.items():
      flags_used = sorted({r.get("xla_flags", "") for r in rs} - {""})
      lines += [
        f"## {tag}" + (f" (XLA_FLAGS={', '.join(flags_used)})" if flags_used else ""),
        "",
        header,
        *map(row, rs),
        "",
      ]
    with open(os.path.join(out_dir, name[: -len(".jsonl")] + ".md"), "w") as f:
      f.write("\n".join(lines))


def _report_intro(first: dict, name: str):
  """(the lines that open <name>.md, its table header, its row function), by the records' kind."""
  what = first.get("what")
  if what == "kernels":
    where = (
      "compiled for the GPU on a CPU host, without it"
      if first["target_config"] != "local"
      else "compiled for the device itself"
    )
    text = (
      f"# Kernels per train step: {first['device']}\n\nMade by `scripts/benchmark.py "
      f"--what=kernels` (jax {first['jax_version']}, {first['date']}); the raw records, with every "
      f"kind of kernel, are in `{name}`. The step is {where}, and the kernels one step launches "
      f"are counted in the optimised HLO: a count, not a timing. Reductions are kInput fusions "
      f"(transposes included), elementwise kLoop fusions; a scanned loop's body counts once per "
      f"iteration, and each iteration also syncs the host."
    )
    return [text, ""], KERNEL_HEADER, kernel_row
  if what == "vs_torch":
    text = (
      f"# Train step against PyTorch eager: {first['device']}\n\nMade by "
      f"`scripts/benchmark_vs_torch.py` (jax {first['jax_version']}, torch "
      f"{first['torch_version']}, {first['date']}); the raw records are in `{name}`. Both sides "
      f"in their own process, timed in turns; ratio = cnn_depth's median images/s over "
      f"PyTorch's (above 1: cnn_depth is faster), with the range of the round-by-round ratios. "
      f"float32, SGD with momentum and weight decay, BN statistics updated."
    )
    return [text, ""], VS_TORCH_HEADER, vs_torch_row
  text = (
    f"# Train-step benchmark: {first['device']}\n\nMade by `scripts/benchmark.py` (jax "
    f"{first['jax_version']}, {first['date']}); the raw records are in `{name}`. Synthetic uint8 "
    f"CIFAR batches on the device, augmentation and SGD inside the step; images/s is the median "
    f"of the timed repeats."
  )
  return [text, ""], HEADER, table_row


def layout(r: dict) -> str:
  """The stages column: layout, unroll factor, remat, and the BN implementation when it is
  flax's."""
  return (
    f"{r['stages']}{'' if r['unroll'] == 1 else ' u' + str(r['unroll'])}"
    f"{' remat' if r['remat'] else ''}{' flax-bn' if r.get('bn_impl', 'flax') == 'flax' else ''}"
  )


def net_label(r: dict) -> str:
  """The family column: the family, with the run's fix preset and model options where it has
  them ('cifar_resnet fixup', 'cifar_preact nf nf_alpha=0.5')."""
  options = ",".join(f"{k}={v}" for k, v in r.get("model_options", {}).items())
  return " ".join(filter(None, (r["family"], r.get("fix", ""), options)))


def table_row(r: dict) -> str:
  if r.get("what") == "kernels":
    return kernel_row(r)
  mem = "-" if r.get("peak_mem_gb") is None else f"{r['peak_mem_gb']:.2f}"
  share = f"{100 * r['loop_share']:.1f}%" if r.get("what") == "loop" else "-"
  what = r.get("what", "step") + (f" (eval /{r['eval_every']})" if r.get("what") == "loop" else "")
  return (
    f"| {what} | {net_label(r)} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{r['images_per_sec']:,.0f} | {r['step_ms']:.2f} | {r['compile_s']:.1f} | {mem} | {share} |"
  )


def kernel_row(r: dict) -> str:
  k = r["kernels_by_kind"]
  conv, red, ew = k.get("conv", 0), k.get("fusion_kInput", 0), k.get("fusion_kLoop", 0)
  program = "loop" if r.get("loop_program") else "step"
  return (
    f"| {program} | {net_label(r)} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{'yes' if r['log_block_norms'] else 'no'} | {r['kernels']:,} | {conv} | {red} | {ew} | "
    f"{r['kernels'] - conv - red - ew} | {r['loop_syncs']} | {r['compile_s']:.1f} |"
  )
