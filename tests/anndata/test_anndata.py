"""AnnData in and out (``sitransport.anndata``): representations named as scanpy names them,
``.obs`` columns as conditions, results written to a copy unless asked otherwise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport import TransportFlow

ad = pytest.importorskip("anndata", reason="the anndata extra: pip install -e '.[anndata]'")
pd = pytest.importorskip("pandas", reason="anndata's dependency pandas")
sparse = pytest.importorskip("scipy.sparse", reason="anndata's dependency scipy")

FIT = dict(steps=30, batch_size=64, seed=0, progress=False, network=st.MLPSpec(width=16))


def _adata(n: int = 60, genes: int = 5, pcs: int = 2, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(rng.normal(size=(n, genes)).astype(np.float32))
    adata.obsm["X_pca"] = rng.normal(size=(n, pcs))
    adata.layers["counts"] = rng.poisson(3.0, size=(n, genes)).astype(np.float64)
    labels = np.where(np.arange(n) % 2 == 0, "a", "b")
    adata.obs["group"] = pd.Categorical(labels)
    adata.obs["dose"] = np.linspace(0.0, 1.0, n)
    return adata


def _translation(d: int) -> TransportFlow:
    """The flow x -> x + 1 (constant unit velocity for unit time)."""
    return TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(d,))


def _snapshot(adata: ad.AnnData) -> tuple:
    return (
        adata.X.copy(),
        sorted(adata.obsm.keys()),
        list(adata.obs.columns),
        {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
    )


def _unchanged(adata: ad.AnnData, before: tuple) -> None:
    x, keys, columns, obsm = before
    np.testing.assert_array_equal(adata.X, x)
    assert sorted(adata.obsm.keys()) == keys
    assert list(adata.obs.columns) == columns
    for k, v in obsm.items():
        np.testing.assert_array_equal(adata.obsm[k], v)


# --------------------------------------------------------------------------- import


def test_importing_the_package_does_not_import_anndata():
    code = "import sys, sitransport; print('anndata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_anndata_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata now fails
    with pytest.raises(ImportError, match=r"sitransport\[anndata\]"):
        st.anndata.representation(np.zeros((3, 2)), use_rep="X_pca")


# ------------------------------------------------------------------- representation


def test_use_rep_reads_obsm():
    adata = _adata()
    out = st.anndata.representation(adata, use_rep="X_pca")
    np.testing.assert_array_equal(out, adata.obsm["X_pca"])


def test_default_is_x_and_use_rep_x_is_x():
    adata = _adata()
    np.testing.assert_array_equal(st.anndata.representation(adata), adata.X)
    np.testing.assert_array_equal(st.anndata.representation(adata, use_rep="X"), adata.X)


def test_sparse_x_is_densified():
    adata = _adata()
    dense = adata.X.copy()
    adata.X = sparse.csr_matrix(dense)
    out = st.anndata.representation(adata)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, dense)


def test_layer_is_read():
    adata = _adata()
    out = st.anndata.representation(adata, layer="counts")
    np.testing.assert_array_equal(out, adata.layers["counts"])


def test_obsm_dataframe_is_read():
    adata = _adata()
    frame = pd.DataFrame(adata.obsm["X_pca"], index=adata.obs_names, columns=["a", "b"])
    adata.obsm["frame"] = frame
    np.testing.assert_array_equal(
        st.anndata.representation(adata, use_rep="frame"), frame.to_numpy()
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"use_rep": "X_umap"}, KeyError, r"use_rep='X_umap'.*X_pca"),
        ({"layer": "spliced"}, KeyError, r"layer='spliced'.*counts"),
        ({"use_rep": "X_pca", "layer": "counts"}, ValueError, r"use_rep.*layer"),
        ({"use_rep": 3}, TypeError, r"use_rep must be a string"),
    ],
)
def test_bad_representation_is_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        st.anndata.representation(_adata(), **kwargs)


def test_not_an_anndata_is_refused():
    with pytest.raises(TypeError, match=r"adata must be an anndata.AnnData, got ndarray"):
        st.anndata.representation(np.zeros((3, 2)))


def test_plain_fit_points_to_the_module():
    adata = _adata()
    with pytest.raises(TypeError, match=r"sitransport.anndata"):
        st.fit(adata, adata, steps=2, progress=False)


# ------------------------------------------------------------------------------- fit


def test_fit_on_anndata_is_fit_on_its_representation():
    a0, a1 = _adata(seed=0), _adata(seed=1)
    flow = st.anndata.fit(a0, a1, use_rep="X_pca", **FIT)
    same = st.fit(a0.obsm["X_pca"], a1.obsm["X_pca"], **FIT)
    x = a0.obsm["X_pca"][:5]
    np.testing.assert_array_equal(flow.push_forward(x), same.push_forward(x))


def test_fit_mixes_anndata_and_other_ends():
    a1 = _adata(seed=1)
    flow = st.anndata.fit("gaussian", a1, use_rep="X_pca", **FIT)
    same = st.fit("gaussian", a1.obsm["X_pca"], **FIT)
    np.testing.assert_array_equal(flow.sample(4, seed=0), same.sample(4, seed=0))


def test_condition_key_categorical_is_labels():
    a1 = _adata(seed=1)
    flow = st.anndata.fit("gaussian", a1, use_rep="X_pca", condition_key="group", **FIT)
    labels = np.asarray(a1.obs["group"].astype(str))
    same = st.fit("gaussian", a1.obsm["X_pca"], condition=labels, **FIT)
    assert flow.config.condition == same.config.condition
    x = np.zeros((2, 2))
    np.testing.assert_array_equal(
        flow.push_forward(x, condition="a"), same.push_forward(x, condition="a")
    )


def test_condition_key_on_both_ends_pairs_within_conditions():
    a0, a1 = _adata(seed=0), _adata(seed=1)
    flow = st.anndata.fit(a0, a1, use_rep="X_pca", condition_key="dose", **FIT)
    c0, c1 = a0.obs["dose"].to_numpy(), a1.obs["dose"].to_numpy()
    same = st.fit(a0.obsm["X_pca"], a1.obsm["X_pca"], condition=(c0, c1), **FIT)
    x = a0.obsm["X_pca"][:3]
    np.testing.assert_array_equal(
        flow.push_forward(x, condition=c0[:3]), same.push_forward(x, condition=c0[:3])
    )


def test_condition_key_needs_an_anndata_end():
    with pytest.raises(ValueError, match=r"condition_key"):
        st.anndata.fit("gaussian", np.zeros((10, 2)), condition_key="group", **FIT)


def test_condition_key_and_condition_together_are_refused():
    a1 = _adata()
    with pytest.raises(ValueError, match=r"condition_key.*condition"):
        st.anndata.fit("gaussian", a1, use_rep="X_pca", condition_key="group", condition=[0])


def test_missing_obs_column_is_named():
    with pytest.raises(KeyError, match=r"condition_key='batch'.*group"):
        st.anndata.fit("gaussian", _adata(), use_rep="X_pca", condition_key="batch", **FIT)


def test_missing_category_is_refused():
    a1 = _adata()
    a1.obs["group"] = a1.obs["group"].cat.add_categories("c")
    a1.obs.loc[a1.obs_names[0], "group"] = np.nan
    with pytest.raises(ValueError, match=r"condition_key='group'.*missing"):
        st.anndata.fit("gaussian", a1, use_rep="X_pca", condition_key="group", **FIT)


# ------------------------------------------------------------------------ results


def test_push_forward_writes_obsm_of_a_copy():
    adata = _adata()
    before = _snapshot(adata)
    out = st.anndata.push_forward(_translation(2), adata, use_rep="X_pca")
    _unchanged(adata, before)  # the caller's object is untouched
    assert out is not adata
    np.testing.assert_allclose(out.obsm["X_transported"], adata.obsm["X_pca"] + 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.obsm["X_pca"], adata.obsm["X_pca"])


def test_push_forward_in_place_when_asked():
    adata = _adata()
    out = st.anndata.push_forward(
        _translation(2), adata, use_rep="X_pca", key_added="X_moved", copy=False
    )
    assert out is None
    np.testing.assert_allclose(adata.obsm["X_moved"], adata.obsm["X_pca"] + 1.0, atol=1e-5)


def test_push_forward_of_a_view_leaves_the_parent_alone():
    adata = _adata()
    before = _snapshot(adata)
    view = adata[adata.obs["group"] == "a"]
    out = st.anndata.push_forward(_translation(2), view, use_rep="X_pca")
    _unchanged(adata, before)
    assert out.n_obs == view.n_obs and not out.is_view


def test_pull_back_writes_obsm():
    adata = _adata()
    out = st.anndata.pull_back(_translation(5), adata)
    np.testing.assert_allclose(out.obsm["X_pulled_back"], adata.X - 1.0, atol=1e-5)


def test_push_forward_passes_the_condition_column():
    a1 = _adata(seed=1)
    flow = st.anndata.fit("gaussian", a1, use_rep="X_pca", condition_key="group", **FIT)
    out = st.anndata.push_forward(flow, a1, use_rep="X_pca", condition_key="group")
    labels = np.asarray(a1.obs["group"].astype(str))
    np.testing.assert_array_equal(
        out.obsm["X_transported"], flow.push_forward(a1.obsm["X_pca"], condition=labels)
    )


def test_log_prob_writes_obs_with_its_standard_error():
    adata = _adata()
    adata.obsm["X_pca"] = np.zeros((adata.n_obs, 2))
    flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
    before = _snapshot(adata)
    out = st.anndata.log_prob(flow, adata, use_rep="X_pca", method="exact")
    _unchanged(adata, before)
    # rho1 = N(0, e^2 I): log density at 0 is -log(2 pi) - 2
    np.testing.assert_allclose(out.obs["log_prob"], -np.log(2 * np.pi) - 2.0, atol=1e-4)
    np.testing.assert_array_equal(out.obs["log_prob_stderr"], 0.0)


def test_key_added_must_be_a_string():
    with pytest.raises(TypeError, match=r"key_added must be a string"):
        st.anndata.push_forward(_translation(2), _adata(), use_rep="X_pca", key_added=1)


def test_representation_of_the_wrong_width_is_refused_by_the_flow():
    with pytest.raises(ValueError):
        st.anndata.push_forward(_translation(3), _adata(), use_rep="X_pca")


def test_copy_must_be_a_bool():
    with pytest.raises(TypeError, match=r"copy must be a bool"):
        st.anndata.push_forward(_translation(2), _adata(), use_rep="X_pca", copy="no")


def test_log_prob_in_place_with_its_own_key():
    adata = _adata()
    flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
    out = st.anndata.log_prob(
        flow, adata, use_rep="X_pca", key_added="lp", copy=False, method="exact"
    )
    assert out is None
    expected = flow.log_prob(adata.obsm["X_pca"], method="exact")
    np.testing.assert_allclose(adata.obs["lp"], expected)
    assert "lp_stderr" in adata.obs
