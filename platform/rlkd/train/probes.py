"""Probes: short trial runs that measure what a candidate KD weighting would do.

A probe restores a snapshot of the student and its optimizer into a
private copy of the model. It then trains `probe_steps` steps on fixed
probe batches with the candidate weights and scores the result on a fixed
reward slice of dev data. The copy sits outside DistributedDataParallel,
so probes never take part in gradient synchronisation, and each rank
probes its own share of the group.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from rlkd.train.alignment import HIDDEN_ALIGNMENT
from rlkd.train.encoding import EncodedSplit, collate
from rlkd.train.evaluation import DevCounts, count_predictions, metrics_from_counts
from rlkd.train.step import LossSettings, build_optimizer, training_step


@dataclass
class ProbeData:
    """The fixed inputs that make probes of one run comparable with each other."""

    probe_batches: list[np.ndarray]  # train indices, one array per probe step
    reward_indices: np.ndarray  # dev indices of the reward slice


def choose_probe_data(train: EncodedSplit, dev: EncodedSplit, *, probe_steps: int, batch_size: int,
                      reward_examples: int, seed: int) -> ProbeData:
    """Draw probe batches and the reward slice once per run, identically on every rank (same seed)."""
    rng = np.random.default_rng(seed + 7919)
    needed = min(len(train), probe_steps * batch_size)
    order = rng.permutation(len(train))[:needed]
    # Batches of similar length pad little; every candidate trains on the same batches in the same order.
    order = order[np.argsort([len(train.input_ids[index]) for index in order], kind="stable")]
    batches = [order[(step * batch_size) % needed:][:batch_size] for step in range(probe_steps)]
    reward_indices = np.sort(rng.permutation(len(dev))[: min(reward_examples, len(dev))])
    return ProbeData(batches, reward_indices)


class Prober:
    """Runs probes on a private copy of the student, reusing one copy and one optimizer for the whole run."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: ProbeData,
                 train: EncodedSplit, dev: EncodedSplit, settings: LossSettings, pad_token_id: int):
        self.model = model
        self.optimizer = optimizer
        self.data = data
        self.train = train
        self.dev = dev
        self.settings = settings
        self.pad_token_id = pad_token_id
        self.probe_model = copy.deepcopy(model)
        self.metric_loss_name = "forward_kl" if settings.loss_name == HIDDEN_ALIGNMENT else settings.loss_name
        self.probe_optimizer = build_optimizer(self.probe_model, optimizer.defaults["lr"])

    def score(self, model: torch.nn.Module) -> dict[str, float]:
        return metrics_from_counts(self.count(model, self.data.reward_indices))

    def count(self, model: torch.nn.Module, indices: np.ndarray) -> DevCounts:
        """Count the predictions of `model` on dev `indices`, usually a rank's share of the reward slice."""
        return count_predictions(
            model, self.dev, indices, pad_token_id=self.pad_token_id,
            softmax_temperature=self.settings.softmax_temperature, kd_loss_name=self.metric_loss_name,
        )

    def run(self, candidates: list[list[float]], seed: int) -> list[dict[str, float]]:
        """Probe each candidate from the current snapshot; return the reward-slice metrics after each probe."""
        model_state = copy.deepcopy(self.model.state_dict())
        optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        learning_rates = [group["lr"] for group in self.optimizer.param_groups]
        results = []
        for candidate in candidates:
            self.probe_model.load_state_dict(model_state)
            # Optimizer.load_state_dict keeps the given state tensors when dtype and device
            # match, so without a fresh copy one probe's Adam moments would leak into the next.
            self.probe_optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            for group, learning_rate in zip(self.probe_optimizer.param_groups, learning_rates):
                group["lr"] = learning_rate
            kd_weight = torch.tensor(candidate, dtype=torch.float32)

            # The same dropout masks for every candidate, so that reward differences come from the weights alone.
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.probe_model.train()
                for indices in self.data.probe_batches:
                    batch = collate(self.train, indices, self.pad_token_id)
                    training_step(self.probe_model, self.probe_optimizer, batch, kd_weight, self.settings)
            results.append(self.score(self.probe_model))
        return results
