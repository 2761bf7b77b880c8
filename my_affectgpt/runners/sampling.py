"""Endless, resumable streams of training batches.

An epoch is a fixed number of iterations, not a pass over the data, so each training dataset
is read as a stream that cycles it in *passes*. Pass ``p`` is the order
``DistributedSampler(shuffle=True, seed=run.seed, drop_last=True).set_epoch(p)`` gives this
rank, cut into full batches. A stream's position is ``(pass, batch)``; resuming at a position
skips batches in index space, so nothing is loaded for them.

With several training datasets, :class:`MixedStream` picks the dataset for each global step
from ``(seed, step)`` alone, weighted by ``sample_ratio``: the choice does not depend on what
ran before, so it is the same after a resume and on every rank.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from my_affectgpt.common.errors import UserError


class PassBatchSampler(Sampler[List[int]]):
    """This rank's batches of one shuffled pass over a dataset, from batch ``start`` on."""

    def __init__(self, dataset_len: int, batch_size: int, num_replicas: int, rank: int, seed: int,
                 pass_index: int, start: int = 0):
        sampler = DistributedSampler(
            range(dataset_len), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        sampler.set_epoch(pass_index)
        indices = list(sampler)
        self.num_batches = len(indices) // batch_size
        self.batch_size = batch_size
        self.start = start
        self._indices = indices

    def __iter__(self) -> Iterator[List[int]]:
        for b in range(self.start, self.num_batches):
            yield self._indices[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start)


def batches_per_pass(dataset_len: int, batch_size: int, num_replicas: int) -> int:
    return (dataset_len // num_replicas) // batch_size


class DataStream:
    """Batches of one dataset for one rank, forever, from a saved ``(pass, batch)`` position.

    A new DataLoader (non-persistent workers) is made for every pass, after calling the
    dataset's ``set_epoch(pass)`` if it has one, so new workers see the new pass. Each pass's
    loader has its own seeded generator: creating loaders never touches the global torch RNG,
    which keeps a resumed run's random numbers (dropout) identical to an uninterrupted one.
    """

    def __init__(self, name: str, dataset, *, batch_size: int, num_replicas: int, rank: int, seed: int,
                 num_workers: int = 0, pin_memory: bool = False):
        self.name = name
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.collate_fn = getattr(dataset, "collater", None)
        self.num_batches = batches_per_pass(len(dataset), batch_size, num_replicas)
        if self.num_batches == 0:
            raise UserError(
                f"training dataset '{name}' has {len(dataset)} samples, fewer than one batch per process "
                f"(run.batch_size_train={batch_size} x {num_replicas} process(es)); "
                f"lower run.batch_size_train or add data"
            )
        self.pass_index = 0
        self.batch_index = 0
        self._iterator: Optional[Iterator] = None

    def position(self) -> Dict[str, int]:
        """Where the next batch comes from."""
        return {"pass": self.pass_index, "batch": self.batch_index}

    def seek(self, position: Mapping[str, int]) -> None:
        pass_index, batch_index = int(position["pass"]), int(position["batch"])
        if not 0 <= batch_index < self.num_batches:
            raise UserError(
                f"dataset '{self.name}': saved stream position batch {batch_index} is outside this pass of "
                f"{self.num_batches} batches; the dataset size, batch size or world size changed since "
                f"the checkpoint was written"
            )
        self.pass_index, self.batch_index = pass_index, batch_index
        self._iterator = None

    def _loader_for_current_pass(self) -> DataLoader:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.pass_index)
        sampler = PassBatchSampler(len(self.dataset), self.batch_size, self.num_replicas, self.rank,
                                   self.seed, self.pass_index, start=self.batch_index)
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.rank, self.pass_index]).generate_state(1)[0])
        )
        return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate_fn,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=False, generator=generator)

    def next_batch(self):
        if self._iterator is None:
            self._iterator = iter(self._loader_for_current_pass())
        batch = next(self._iterator)
        self.batch_index += 1
        if self.batch_index == self.num_batches:
            self.pass_index, self.batch_index = self.pass_index + 1, 0
            self._iterator = None
        return batch


class MixedStream:
    """Several :class:`DataStream` s mixed by ratio; the dataset of step ``s`` depends on (seed, s)."""

    def __init__(self, streams: Sequence[DataStream], ratios: Sequence[float], seed: int):
        if len(streams) != len(ratios) or not streams:
            raise ValueError("MixedStream needs one ratio per stream and at least one stream")
        for stream, ratio in zip(streams, ratios):
            if not ratio > 0:
                raise ValueError(f"datasets.{stream.name}.sample_ratio must be > 0, got {ratio}")
        self.streams = list(streams)
        total = float(sum(ratios))
        self._cumulative = np.cumsum([r / total for r in ratios])
        self.seed = seed

    def stream_for_step(self, step: int) -> DataStream:
        if len(self.streams) == 1:
            return self.streams[0]
        draw = np.random.default_rng([self.seed, step]).random()
        index = int(np.searchsorted(self._cumulative, draw, side="right"))
        return self.streams[min(index, len(self.streams) - 1)]

    def next_batch(self, step: int):
        return self.stream_for_step(step).next_batch()

    def positions(self) -> Dict[str, Dict[str, int]]:
        return {s.name: s.position() for s in self.streams}

    def seek(self, positions: Mapping[str, Mapping[str, int]]) -> None:
        missing = [s.name for s in self.streams if s.name not in positions]
        if missing:
            raise UserError(
                f"the checkpoint has no stream position for training dataset(s) {', '.join(missing)}; "
                f"it was written with other datasets (saved: {', '.join(positions) or 'none'})"
            )
        for stream in self.streams:
            stream.seek(positions[stream.name])
