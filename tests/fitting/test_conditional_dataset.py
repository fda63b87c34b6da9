"""Conditions of a torch Dataset at rho1 (one per item) and of ImageData: drawn with the items
they belong to, split with them, resumed with the dataset's position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.distributed import ShardedDataset
from sitransport.ends.conditions import ConditionEncoder
from sitransport.ends.densities import StandardNormal
from sitransport.ends.normalization import Normalization
from sitransport.fitting.conditions import ConditionalDatasetDraw, split_conditions

TINY = dict(steps=12, batch_size=16, progress=False, network=st.UNetSpec("tiny"))


def _labelled(n: int = 120) -> tuple[torch.utils.data.Dataset, torch.Tensor]:
    """Images whose every pixel is the item's label (so a batch shows whose condition it has)."""
    labels = torch.arange(n) % 3
    images = labels[:, None, None, None].expand(n, 1, 4, 4).to(torch.float32).clone()
    return torch.utils.data.TensorDataset(images, labels), labels


def test_each_drawn_item_carries_its_own_condition():
    data, labels = _labelled()
    enc = ConditionEncoder.fit(labels.numpy())
    draw = ConditionalDatasetDraw(
        StandardNormal((1, 4, 4)),
        ShardedDataset(data, seed=0),
        labels.numpy(),
        enc,
        Normalization.identity((1, 4, 4)),
        torch.float32,
    )
    g = torch.Generator().manual_seed(0)
    for _ in range(10):  # more than an epoch of batches of 16
        _, x1, codes = draw(16, g)
        assert torch.equal(x1[:, 0, 0, 0].long(), codes)


def test_the_split_keeps_items_with_their_conditions():
    data, labels = _labelled()
    c = np.asarray([f"class-{int(v)}" for v in labels])
    source = ShardedDataset(data, seed=0)
    train, held, c_train, c_held = split_conditions(
        source, c, 0.25, torch.Generator().manual_seed(0), "rho1"
    )
    assert len(train.dataset) == len(c_train) == 90 and len(held) == len(c_held) == 30
    assert [f"class-{int(x)}" for x in held[:, 0, 0, 0]] == c_held.tolist()
    stored = [int(train.dataset[i][1]) for i in range(len(c_train))]
    assert [f"class-{v}" for v in stored] == c_train.tolist()


def test_a_dataset_with_conditions_fits_samples_and_resumes_exactly(
    tmp_path, killed_after_checkpoint
):
    data, labels = _labelled()
    flow = st.fit("gaussian", data, condition=labels, seed=3, **TINY)
    assert flow.config.condition == "labels" and flow.condition.labels == (0, 1, 2)
    assert flow.sample(4, seed=0, condition=2).shape == (4, 1, 4, 4)
    ckpt = st.Checkpointing(tmp_path, every=5, resume=True)
    with killed_after_checkpoint():
        st.fit("gaussian", data, condition=labels, seed=3, checkpoint=ckpt, **TINY)
    resumed = st.fit("gaussian", data, condition=labels, seed=3, checkpoint=ckpt, **TINY)
    whole = st.fit("gaussian", data, condition=labels, seed=3, checkpoint=tmp_path / "b", **TINY)
    mine, theirs = resumed.network.state_dict(), whole.network.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_resuming_with_other_conditions_is_refused(tmp_path, killed_after_checkpoint):
    data, labels = _labelled()
    ckpt = st.Checkpointing(tmp_path, every=5, resume=True)
    with killed_after_checkpoint():
        st.fit("gaussian", data, condition=labels, checkpoint=ckpt, **TINY)
    with pytest.raises(st.errors.CheckpointMismatchError, match="condition"):
        st.fit("gaussian", data, condition=(labels + 1) % 3, checkpoint=ckpt, **TINY)


def test_conditions_must_have_one_row_per_item():
    data, labels = _labelled()
    with pytest.raises(ValueError, match=r"condition must have one row per sample of rho1 \(120\)"):
        st.fit("gaussian", data, condition=labels[:-1], **TINY)


def test_image_data_takes_its_labels_as_conditions():
    labels = np.repeat(np.arange(3), 40)
    pixels = np.broadcast_to(labels[:, None, None, None] * 100, (120, 1, 4, 4))
    images = st.images.ImageData(pixels.astype(np.uint8), labels, levels=256)
    flow = st.fit("gaussian", images, condition=images.labels, **TINY)
    assert flow.sample(2, seed=0, condition=[0, 2]).shape == (2, 1, 4, 4)
