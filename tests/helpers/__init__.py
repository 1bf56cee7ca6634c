"""What several test files share, importable as `helpers.<module>` (pyproject's pytest section puts
tests/ on sys.path; the test files themselves import nothing from one another).

runner.py         ROOT, and `run_script`: the one subprocess runner for every test of a script
workdirs.py       the tiny trained workdirs made once per test run (conftest.py's fixtures)
training.py       the tiny quickstart run of tests/test_train.py, its command line and its readers
data_files.py     tiny datasets in the real on-disk formats (CIFAR pickles, TFDS array_record)
nets.py           numpy-drawn variables, a block taken out, the classic families' tiny variants
figures.py        fake workdirs and the non-empty-figure check of the plotting and study tests
interop.py        the PyTorch fixtures' weights and the weight scripts' one-line errors
overrides.py      generated --config overrides for the fuzz of the training command's checks
slurm_cluster.py  a real single-node SLURM cluster on 127.0.0.1 (tests/scripts/test_sweep_slurm.py)
"""
