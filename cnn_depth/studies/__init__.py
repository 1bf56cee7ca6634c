"""One module per study: the runs a paper's reproduction trains, what it measures, its CSVs and
figures, and the phenomena it checks (`registry.Study`). `scripts/reproduce.py --study=NAME`
runs any of them.

registry.py     Study, RunSpec, register/get, options parsed by their defaults' types
he2016.py       He et al. 2016: plain nets vs ResNets, the degradation problem (Fig. 6, Table 6)
huang2016.py    Huang et al. 2016: stochastic depth (Fig. 3)
veit2016.py     Veit et al. 2016: lesions and path lengths (Figs. 3, 5, 6)
li2018.py       Li et al. 2018: loss landscapes and Hessian spectra (on he2016's runs)
balduzzi2017.py Balduzzi et al. 2017: shattered gradients (on he2016's runs)
quickstart.py   the main job: He's degradation and Veit's lesions on the digits, in minutes
trainable_depth.py  the fixes for depth side by side: training error against depth (#25, 1)
phase_diagram.py    Schoenholz/Xiao: the sigma_w2-depth phase diagram, orthogonal vs Gaussian (2)
depth_transfer.py   Yang/Bordelon: the best lr against depth, with and without 1/sqrt(L) (3)
fixes_why.py        each fix under Balduzzi's gradient correlation and Li's Hessian (4)

Importing this package registers every study. A new study is one file that calls
`registry.register(Study(...))`, imported below (a toy one can be registered from a test).
"""

# isort: off
from cnn_depth.studies import registry
from cnn_depth.studies import he2016, huang2016, veit2016, li2018, balduzzi2017, quickstart  # noqa: F401
from cnn_depth.studies import trainable_depth, phase_diagram, depth_transfer, fixes_why  # noqa: F401

# isort: on
from cnn_depth.studies.registry import RunSpec, Study, StudyError, get, names, register, unregister

__all__ = ["registry", "RunSpec", "Study", "StudyError", "get", "names", "register", "unregister"]
