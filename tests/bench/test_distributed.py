"""The collectives of the training step in one process, and the per-step random draws."""

import torch

from mtlbench.bench.run.distributed import BUCKET_BYTES, Collective, _buckets, step_rng, step_seed


def test_one_process_collectives_are_the_identity():
    collective = Collective()
    tensor = torch.tensor([1.0, 2.0])
    collective.mean_([tensor])
    assert collective.world_size == 1 and collective.rank == 0
    assert torch.equal(tensor, torch.tensor([1.0, 2.0]))
    assert torch.equal(collective.sum(tensor), tensor) and torch.equal(collective.gather(tensor, dim=0), tensor)
    assert collective.broadcast_int(7, torch.device("cpu")) == 7


def test_buckets_are_bounded_and_keep_order():
    big = BUCKET_BYTES // 4  # floats
    tensors = [torch.zeros(big // 2), torch.zeros(big // 2), torch.zeros(3), torch.zeros(big)]
    buckets = list(_buckets(tensors))
    assert [len(bucket) for bucket in buckets] == [2, 1, 1]
    assert [t for bucket in buckets for t in bucket] == tensors


def test_step_draws_depend_on_the_step_only_and_leave_the_global_generator_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    with step_rng(11, 4, torch.device("cpu")):
        first = torch.randperm(10)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(5)  # whatever else the process drew meanwhile
    with step_rng(11, 4, torch.device("cpu")):
        assert torch.equal(torch.randperm(10), first)
    assert step_seed(11, 4) != step_seed(11, 5) != step_seed(12, 4)


def _sample_order(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    collective = Collective()
    local = collective.global_positions(2).float().view(2, 1).expand(2, 3) * 10  # [samples, features]
    everything = collective.gather_samples(local[None], dim=1)[0]
    torch.save({"everything": everything, "own": collective.own_samples(everything, dim=0), "local": local}, f"{out}-{rank}.pt")
    dist.destroy_process_group()


def test_gathered_samples_stand_in_the_global_batch_order_and_each_rank_gets_its_own_back(tmp_path):
    """The samplers deal samples out in turn: 3 ranks with 2 samples each hold positions
    (0, 3), (1, 4), (2, 5); gathered, they are in order 0..5 as one process holds them."""
    world = 3
    torch.multiprocessing.spawn(_sample_order, args=(world, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=world)
    for rank in range(world):
        result = torch.load(tmp_path / f"out-{rank}.pt", weights_only=True)
        assert torch.equal(result["everything"][:, 0], torch.arange(6.0) * 10)
        assert torch.equal(result["own"], result["local"])
