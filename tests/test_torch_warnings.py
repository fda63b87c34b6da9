"""No torch warning reaches the caller of fit or of a flow's methods (issue 24): a tensor that
requires grad read as a number, a read-only NumPy array shared with torch, torch's deprecated
``torch.jit.script`` behind forward-mode derivatives of a custom path.

torch gives each of these once per process, so the cases run in a fresh interpreter, each
recording every warning it raises (and any error, as one more entry).
"""

from __future__ import annotations

import json

from tests.helpers import run_in_fresh_python

SCRIPT = """
import json, warnings
import numpy as np, torch, xarray as xr
import sitransport as st
from sitransport.interpolants import Custom
from tests.helpers import TINY

torch.set_num_threads(1)
x = st.datasets.sample("moons", 200, seed=0)
flow = st.fit("gaussian", x, **TINY)


def grad_inputs():
    y = torch.tensor(x[:5], requires_grad=True)
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    flow.push_forward(y), flow.pull_back(y), flow.log_prob(y, progress=False)
    flow.velocity(y, t), flow.score(y, t)
    flow.trajectory(y, torch.linspace(0, 1, 3, dtype=torch.float64, requires_grad=True))


def read_only_inputs():
    frozen = x.copy()
    frozen.setflags(write=False)
    st.fit("gaussian", frozen, **TINY)
    flow.push_forward(frozen[:5]), flow.log_prob(frozen[:5], progress=False)
    flow.pull_back(np.broadcast_to(x[:1], (4, 2)))
    flow.push_forward(xr.DataArray(frozen[:5], dims=("sample", "dim")))
    times = np.linspace(0.0, 1.0, 3)
    times.setflags(write=False)
    flow.trajectory(x[:5], times)


def custom_path():
    path = Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)
    st.fit("gaussian", x, **TINY, interpolant=path).sample(3, seed=0)


out = {}
for case in (grad_inputs, read_only_inputs, custom_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            case()
        except Exception as err:  # recorded: the other cases still run
            warnings.warn(f"raised {type(err).__name__}: {err}", stacklevel=1)
    out[case.__name__] = [f"{w.category.__name__}: {w.message}" for w in caught]
print(json.dumps(out))
"""


def test_fit_and_flow_methods_let_no_torch_warning_through():
    """Before: 'Converting a tensor with requires_grad=True to a scalar' (the input checks
    read values of the caller's tensors), 'The given NumPy array is not writable', and
    '`torch.jit.script` is deprecated' (forward-mode AD loading torch's decompositions); and
    trajectory() raised on times that require grad."""
    caught = json.loads(run_in_fresh_python(SCRIPT)[-1])
    assert caught == {"grad_inputs": [], "read_only_inputs": [], "custom_path": []}, caught
