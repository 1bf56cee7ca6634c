"""Benchmark records: the kernels a compiled step launches, and the tables of the timing records.

`count_kernels` reads XLA's optimised HLO text of a step (compiled for a GPU, with or without one)
and counts what one execution launches: fusions by kind, cuDNN/cuBLAS calls, copies, a while loop's
body times its trip count, and the host sync each loop iteration adds. The step is launch-bound at
batch 128 (benchmarks/NOTES.md), so the count is what a change to the step should move.
`write_reports` turns `scripts/benchmark.py`'s JSON-lines records into Markdown tables. No jax.
"""

from __future__ import annotations

import collections
import json
import os
import re

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


def header(record: dict) -> str:
  """The Markdown table header a record's row goes under."""
  return KERNEL_HEADER if record["what"] == "kernels" else HEADER


def record_file(record: dict) -> str:
  """The .jsonl a record belongs to: one per device, and kernels_<target> for kernel counts."""
  if record["what"] == "kernels":
    return f"kernels_{record['target']}.jsonl"
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
    first = records[0]
    if first.get("what") == "kernels":
      where = (
        "compiled for the GPU on a CPU host, without it"
        if first["target_config"] != "local"
        else "compiled for the device itself"
      )
      lines = [
        f"# Kernels per train step: {first['device']}",
        "",
        f"Made by `scripts/benchmark.py --what=kernels` (jax {first['jax_version']}, "
        f"{first['date']}); the raw records, with every kind of kernel, are in `{name}`. The "
        f"step is {where}, and the kernels one step launches are counted in the optimised "
        f"HLO: a count, not a timing. Reductions are kInput fusions (transposes included), "
        f"elementwise kLoop fusions; a scanned loop's body counts once per iteration, and "
        f"each iteration also syncs the host.",
        "",
      ]
      header, row = KERNEL_HEADER, kernel_row
    else:
      lines = [
        f"# Train-step benchmark: {first['device']}",
        "",
        f"Made by `scripts/benchmark.py` (jax {first['jax_version']}, {first['date']}); the "
        f"raw records are in `{name}`. Synthetic uint8 CIFAR batches on the device, "
        f"augmentation and SGD inside the step; images/s is the median of the timed repeats.",
        "",
      ]
      header, row = HEADER, table_row
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


def layout(r: dict) -> str:
  """The stages column: layout, unroll factor, remat, and the BN implementation when it is
  flax's."""
  return (
    f"{r['stages']}{'' if r['unroll'] == 1 else ' u' + str(r['unroll'])}"
    f"{' remat' if r['remat'] else ''}{' flax-bn' if r.get('bn_impl', 'flax') == 'flax' else ''}"
  )


def table_row(r: dict) -> str:
  if r.get("what") == "kernels":
    return kernel_row(r)
  mem = "-" if r.get("peak_mem_gb") is None else f"{r['peak_mem_gb']:.2f}"
  share = f"{100 * r['loop_share']:.1f}%" if r.get("what") == "loop" else "-"
  what = r.get("what", "step") + (f" (eval /{r['eval_every']})" if r.get("what") == "loop" else "")
  return (
    f"| {what} | {r['family']} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{r['images_per_sec']:,.0f} | {r['step_ms']:.2f} | {r['compile_s']:.1f} | {mem} | {share} |"
  )


def kernel_row(r: dict) -> str:
  k = r["kernels_by_kind"]
  conv, red, ew = k.get("conv", 0), k.get("fusion_kInput", 0), k.get("fusion_kLoop", 0)
  program = "loop" if r.get("loop_program") else "step"
  return (
    f"| {program} | {r['family']} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{'yes' if r['log_block_norms'] else 'no'} | {r['kernels']:,} | {conv} | {red} | {ew} | "
    f"{r['kernels'] - conv - red - ew} | {r['loop_syncs']} | {r['compile_s']:.1f} |"
  )
