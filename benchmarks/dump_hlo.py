"""Write the optimised HLO of the bf16 CIFAR ResNet train step: dump_hlo.py DEPTH UNROLL OUT.txt"""
import sys, jax
from cnn_depth import models, optim, state as st, steps
depth, unroll, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
m = models.build_model({"family": "cifar_resnet", "depth": depth, "dtype": "bfloat16", "unroll": unroll})
tx = optim.sgd(0.1)
s = st.create_train_state(m, tx, jax.random.key(0), (32, 32, 3))
b = {"image": jax.numpy.zeros((128, 32, 32, 3), jax.numpy.uint8), "label": jax.numpy.zeros((128,), jax.numpy.int32)}
c = steps.compile_train_step(m, tx, (0, 0, 0), (1, 1, 1)).lower(s, b).compile()
open(out, "w").write(c.as_text())
