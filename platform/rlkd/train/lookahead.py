"""The `lookahead` reward estimator: predicted dev change of any candidate weighting from gradient inner products.

In the spirit of MultiDDS (Wang et al., 2020), a first-order Taylor step
predicts what a candidate weighting w would do without training on it:

    g_l   gradient of the training KD term restricted to language l (kd_weight = e_l)
    g_ce  gradient of the training cross-entropy
    d_k   gradient of the dev cross-entropy of the language-k examples
    M     [L, L] with M[l, k] = <g_l, d_k>;  m[k] = <g_ce, d_k>

A step along the training loss `kd_coefficient * sum_l w_l g_l + ce_weight
* g_ce` of size eta changes dev loss k by about
`-eta * (kd_coefficient * (w @ M)[k] + ce_weight * m[k])`. So one decision
costs L + 1 training and L dev backward passes, whatever the group size.

The students train with AdamW, whose step is the gradient divided per
coordinate by `sqrt(v_hat) + eps` (v_hat: the bias-corrected second moment).
The training gradients are scaled the same way before the inner products,
so M predicts an Adam-like step without momentum. Before the optimiser's
first step there are no moments yet, so the gradients stay as they are, as for SGD.
eta is the current learning rate times `probe_steps`. The estimate runs
with dropout off, on the fixed probe batches and reward slice of
`ProbeData`, and every rank computes the same values, so no gradients cross
the network.

NOTE: first-order predictions ignore momentum, gradient clipping and the
curvature over `probe_steps` steps. bench/estimators.py measures how well
their ranking agrees with probes on the real corpus.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rlkd.constants import LANGS
from rlkd.control.rewards import LOOKAHEAD_METRIC
from rlkd.train.encoding import EncodedSplit, collate
from rlkd.train.probes import ProbeData
from rlkd.train.step import LossSettings, compute_loss


def _flat_gradient(loss: torch.Tensor, parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    # torch.autograd.grad leaves .grad untouched and fires no DDP hooks.
    gradients = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return torch.cat([
        (gradient if gradient is not None else torch.zeros_like(parameter)).reshape(-1)
        for gradient, parameter in zip(gradients, parameters)
    ])


class LookaheadEstimator:
    """Computes M, m and the dev losses at a snapshot, then scores any number of candidates from them."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: ProbeData,
                 train: EncodedSplit, dev: EncodedSplit, settings: LossSettings, pad_token_id: int, probe_steps: int):
        self.model = model
        self.optimizer = optimizer
        self.train_indices = np.concatenate(data.probe_batches)
        self.reward_indices = data.reward_indices
        self.train = train
        self.dev = dev
        self.settings = settings
        self.pad_token_id = pad_token_id
        self.probe_steps = probe_steps
        self.backward_passes = 0

    def gradient_products(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return M [L, L], m [L], the dev CE loss per language [L] and the dev example count per language [L]."""
        was_training = self.model.training
        self.model.eval()
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        try:
            train_gradients, ce_gradient = self._train_gradients(parameters)
            dev_gradients, dev_loss, dev_counts = self._dev_gradients(parameters)
        finally:
            self.model.train(was_training)

        preconditioner = self._preconditioner(parameters)
        train_matrix = torch.stack(train_gradients) * preconditioner
        products = train_matrix @ torch.stack(dev_gradients).T
        ce_products = torch.stack(dev_gradients) @ (ce_gradient * preconditioner)
        return products.double().numpy(), ce_products.double().numpy(), dev_loss, dev_counts

    def _preconditioner(self, parameters) -> torch.Tensor:
        """Return 1 / (sqrt(v_hat) + eps) per coordinate from Adam's second moments, or ones where there are none."""
        settings = {id(parameter): group for group in self.optimizer.param_groups for parameter in group["params"]}
        parts = []
        for parameter in parameters:
            state = self.optimizer.state.get(parameter, {})
            group = settings.get(id(parameter), {})
            if "exp_avg_sq" not in state or "betas" not in group:
                parts.append(torch.ones(parameter.numel()))
                continue
            step = float(state["step"])
            v_hat = state["exp_avg_sq"] / (1 - group["betas"][1] ** step)
            parts.append((1.0 / (v_hat.sqrt() + group["eps"])).reshape(-1))
        return torch.cat(parts)

    def _train_gradients(self, parameters) -> tuple[list[torch.Tensor], torch.Tensor]:
        batch = collate(self.train, self.train_indices, self.pad_token_id)
        kd_only = LossSettings(self.settings.loss_name, self.settings.softmax_temperature, 1.0, 0.0)
        gradients = []
        for index in range(len(LANGS)):
            one_hot = torch.zeros(len(LANGS))
            one_hot[index] = 1.0
            gradients.append(_flat_gradient(compute_loss(self.model, batch, one_hot, kd_only).total, parameters))
        ce_only = LossSettings(self.settings.loss_name, self.settings.softmax_temperature, 0.0, 1.0)
        ce_gradient = _flat_gradient(compute_loss(self.model, batch, torch.ones(len(LANGS)), ce_only).total, parameters)
        self.backward_passes += len(LANGS) + 1
        return gradients, ce_gradient

    def _dev_gradients(self, parameters) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
        batch = collate(self.dev, self.reward_indices, self.pad_token_id)
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        per_example = F.cross_entropy(logits, batch["labels"], reduction="none")
        gradients, losses, counts = [], np.full(len(LANGS), np.nan), np.zeros(len(LANGS))
        for index in range(len(LANGS)):
            mask = batch["language_index"] == index
            counts[index] = float(mask.sum())
            if counts[index] == 0:
                # No dev example of this language: its loss is unknown and its gradient is 0.
                gradients.append(torch.zeros(sum(parameter.numel() for parameter in parameters)))
                continue
            loss = per_example[mask].mean()
            losses[index] = float(loss.detach())
            gradients.append(_flat_gradient(loss, parameters))
            self.backward_passes += 1
        return gradients, losses, counts

    def step_size(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) * self.probe_steps

    def outcome(self, candidates: list[list[float]]) -> dict:
        """Score every candidate: the scores before and the predicted scores after, as reward designs read them."""
        products, ce_products, dev_loss, dev_counts = self.gradient_products()
        eta = self.step_size()
        weights = np.asarray(candidates, dtype=np.float64)
        change = -eta * (self.settings.kd_coefficient * weights @ products + self.settings.ce_weight * ce_products)

        before = _scores(dev_loss, dev_counts)
        after = [_scores(dev_loss + row, dev_counts) for row in change]
        train_examples = (len(LANGS) + 1) * len(self.train_indices)
        return {
            "before": before,
            "after": after,
            "metric": LOOKAHEAD_METRIC,
            "cost_examples": (train_examples + len(self.reward_indices)) / len(candidates),
            "teacher_forwards": train_examples / len(candidates) if self.settings.loss_name == "hidden_alignment" else 0,
        }


def _scores(dev_loss: np.ndarray, dev_counts: np.ndarray) -> dict[str, float]:
    """Negative CE per language and pooled over the reward slice (higher is better, as for F1)."""
    scores = {f"{LOOKAHEAD_METRIC}/{lang}": float(-loss) for lang, loss in zip(LANGS, dev_loss)}
    present = dev_counts > 0
    pooled = (dev_loss[present] * dev_counts[present]).sum() / dev_counts[present].sum() if present.any() else np.nan
    scores[f"{LOOKAHEAD_METRIC}/all"] = float(-pooled)
    return scores
