"""The samplers behind exact DDP and exact resumes: world-size-free training order, per-sample
draws, each evaluation sample once, and a loader that resumes in the middle of an epoch."""

from __future__ import annotations

import pytest
import torch

from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.sampling import EvalOrder, ResumableLoader, SampleKey, TrainOrder, sample_seed


@pytest.mark.parametrize("size", [13, 16, 17])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_shards_of_w_processes_are_the_batches_of_one(size, world):
    """Global batch b of W processes (per-process batch B) = batch b of one process with batch W x B."""
    per_process = 2
    one = [key.index for key in TrainOrder(range(size), num_replicas=1, rank=0, seed=7)]
    shards = [[key.index for key in TrainOrder(range(size), num_replicas=world, rank=rank, seed=7)] for rank in range(world)]
    steps = len(shards[0]) // per_process
    assert steps == size // (world * per_process)  # the batches one process with W x B drops nothing more
    for step in range(steps):
        together = sorted(index for shard in shards for index in shard[step * per_process : (step + 1) * per_process])
        assert together == sorted(one[step * world * per_process : (step + 1) * world * per_process])
    read = [index for shard in shards for index in shard]
    assert len(read) == len(set(read)), "no training sample is read twice in an epoch"


def test_the_order_and_the_draws_are_functions_of_seed_and_epoch():
    def keys(seed: int, epoch: int) -> list[SampleKey]:
        order = TrainOrder(range(20), num_replicas=1, rank=0, seed=seed)
        order.set_epoch(epoch)
        return list(order)

    assert keys(3, 1) == keys(3, 1)
    assert [k.index for k in keys(3, 1)] != [k.index for k in keys(3, 2)]
    assert [k.index for k in keys(3, 1)] != [k.index for k in keys(4, 1)]
    assert all(key.seed == sample_seed(3, 1, key.index) for key in keys(3, 1))
    assert len({sample_seed(3, epoch, 5) for epoch in range(50)}) == 50


@pytest.mark.parametrize("size", [1, 2, 7, 9, 10])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_evaluation_counts_every_sample_once_with_equal_steps(size, world):
    shares = [list(EvalOrder(range(size), num_replicas=world, rank=rank)) for rank in range(world)]
    assert len({len(share) for share in shares}) == 1, "every process runs the same number of steps"
    counted = sorted(key.index for share in shares for key in share if not key.padding)
    assert counted == list(range(size))
    padding = [key for share in shares for key in share if key.padding]
    assert len(padding) == -size % world


def _loader(workers: int, epoch: int = 0) -> ResumableLoader:
    dataset = _Drawing()
    order = TrainOrder(dataset, num_replicas=1, rank=0, seed=11)
    order.set_epoch(epoch)
    return ResumableLoader(dataset, batch_size=3, sampler=order, drop_last=True, num_workers=workers, persistent_workers=workers > 0)


class _Drawing(torch.utils.data.Dataset):
    """A sample is its index and one draw seeded by its key (what the augmentation does)."""

    def __len__(self) -> int:
        return 14

    def __getitem__(self, key: SampleKey) -> torch.Tensor:
        draw = torch.rand((), generator=torch.Generator().manual_seed(key.seed))
        return torch.stack([torch.tensor(float(key.index)), draw])


def _epochs(loader: ResumableLoader, epochs: int) -> list[torch.Tensor]:
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        batches.extend(loader)
    return batches


def test_batches_do_not_depend_on_the_workers_persistent_or_not():
    plain = _epochs(_loader(0), 2)
    with_workers = _epochs(_loader(2), 2)
    assert len(plain) == 2 * (14 // 3)
    assert all(torch.equal(a, b) for a, b in zip(plain, with_workers, strict=True))
    assert not torch.equal(plain[0], plain[4]), "the next epoch draws anew"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_restored_mid_epoch_hands_out_the_rest_of_that_epoch(workers):
    straight = list(_loader(workers, epoch=1))
    interrupted = _loader(workers, epoch=1)
    iterator = iter(interrupted)
    seen = [next(iterator), next(iterator)]
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    resumed = _loader(workers, epoch=1)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert all(torch.equal(a, b) for a, b in zip(seen + rest, straight, strict=True))
    assert resumed.state_dict() == {"epoch": 1, "batches": len(straight)}
    assert len(list(resumed)) == len(straight), "the skip applies to the resumed epoch only"


def test_a_loader_restored_at_an_epoch_end_starts_the_next_epoch_whole():
    finished = _loader(0)
    list(finished)
    resumed = _loader(0, epoch=1)
    resumed.load_state_dict(finished.state_dict())
    assert len(list(resumed)) == 14 // 3


@pytest.mark.parametrize("state", [{"epoch": 0, "batches": 99}, {"epoch": -1, "batches": 0}, {"epoch": "0", "batches": 1}, {}])
def test_a_loader_state_that_does_not_fit_is_one_line(state):
    with pytest.raises(DatasetError, match="training-loader state") as error:
        _loader(0).load_state_dict(state)
    assert "\n" not in str(error.value)


def test_a_padding_sample_has_no_target_pixel_and_a_keyed_sample_is_augmented_alike(tiny_datamodule):
    datamodule = tiny_datamodule(augment=True)
    datamodule.prepare_data()
    datamodule.setup("fit")
    val, train = datamodule.datasets["val"], datamodule.datasets["train"]
    (image, blank), (same_image, real) = val[SampleKey(2, padding=True)], val[SampleKey(2)]
    assert torch.equal(image, same_image)
    assert (real["segmentation"] != -1).any() and (real["depth"] != 0).any()
    assert (blank["segmentation"] == -1).all() and (blank["depth"] == 0).all() and (blank["normal"] == 0).all()
    first, again, other = train[SampleKey(3, seed=5)], train[SampleKey(3, seed=5)], train[SampleKey(3, seed=6)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["depth"], again[1]["depth"])
    assert not torch.equal(first[0], other[0])
