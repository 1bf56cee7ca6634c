"""cnn_depth/analysis/benchmarks.py: the kernels one execution of an HLO module launches, counted on
a written module and on XLA's real output for a scanned train step."""

import pytest

from cnn_depth.analysis import benchmarks

HLO = (
  """HloModule jit_step, entry_computation_layout={(f32[8]{0})->f32[8]{0}}

%fused_add (p: f32[8]) -> f32[8] {
  %p = f32[8]{0} parameter(0)
  ROOT %add = f32[8]{0} add(%p, %p)
}

%body (arg: (s32[], f32[8])) -> (s32[], f32[8]) {
  %arg = (s32[], f32[8]{0}) parameter(0)
  %i = s32[] get-tuple-element(%arg), index=0
  %x = f32[8]{0} get-tuple-element(%arg), index=1
  %f1 = f32[8]{0} fusion(%x), kind=kLoop, calls=%fused_add
  %f2 = (f32[8]{0}, f32[]) fusion(%f1), kind=kInput, calls=%fused_add
  %g = f32[8]{0} get-tuple-element(%f2), index=0
  ROOT %t = (s32[], f32[8]{0}) tuple(%i, %g)
}

%cond (arg.1: (s32[], f32[8])) -> pred[] {
  %arg.1 = (s32[], f32[8]{0}) parameter(0)
  %j = s32[] get-tuple-element(%arg.1), index=0
  %c = s32[] constant(3)
  ROOT %lt = pred[] compare(%j, %c), direction=LT
}

ENTRY %main (x.1: f32[8]) -> f32[8] {
  %x.1 = f32[8]{0} parameter(0)
  %conv = (f32[8]{0}, u8[0]{0}) custom-call(%x.1), custom_call_target="__cudnn$convForward"
  %y = f32[8]{0} get-tuple-element(%conv), index=0
  %z = f32[8]{0} copy(%y)
  %b = f32[8]{0} bitcast(%z)
  %zero = s32[] constant(0)
  %init = (s32[], f32[8]{0}) tuple(%zero, %b)
  %w = (s32[], f32[8]{0}) while(%init), condition=%cond, body=%body, """
  """backend_config={"known_trip_count":{"n":"3"}}
  ROOT %out = f32[8]{0} get-tuple-element(%w), index=1
}
"""
)


def test_count_kernels_of_an_hlo_module():
  counts = benchmarks.count_kernels(HLO)
  # conv + copy in the entry, 2 fusions x 3 iterations; 4 condition evaluations sync the host
  assert counts == {
    "kernels": 8,
    "loop_syncs": 4,
    "kernels_by_kind": {"conv": 1, "copy": 1, "fusion_kLoop": 3, "fusion_kInput": 3},
  }


@pytest.mark.slow
def test_count_kernels_of_a_compiled_scanned_step():
  """The parser reads XLA's real output: the CPU-compiled train step of a scanned ResNet-20."""
  import re

  import jax

  from cnn_depth import models, optim, steps
  from cnn_depth import state as state_lib

  model = models.cifar_resnet(20, width=4, unroll=1)
  tx = optim.sgd(0.1)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (8, 8, 3))
  batch = {
    "image": jax.numpy.zeros((4, 8, 8, 3), jax.numpy.uint8),
    "label": jax.numpy.zeros((4,), jax.numpy.int32),
  }
  text = (
    steps.compile_train_step(model, tx, (0, 0, 0), (1, 1, 1))
    .lower(state, batch)
    .compile()
    .as_text()
  )
  counts = benchmarks.count_kernels(text)
  trips = [int(n) for n in re.findall(r' while\(.*"known_trip_count":\{"n":"(\d+)"', text)]
  # the scans of 2 blocks, forward and backward in each of the 3 stages (XLA:CPU also rolls the
  # random-bits hash into loops of 5)
  assert trips.count(2) == 6
  assert counts["loop_syncs"] == sum(n + 1 for n in trips)
  assert counts["kernels"] > 50 and sum(counts["kernels_by_kind"].values()) == counts["kernels"]
