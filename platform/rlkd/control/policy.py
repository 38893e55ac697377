"""The controller's policy: an RLlib `TorchRLModule` over per-language KD weights.

The action is a vector z of weight logits with one entry per language; the
applied weights are `w = L * softmax(z)`, so they are positive and average
to 1 (uniform KD is z = 0). The policy is a diagonal Gaussian over z whose
mean depends on the state and whose log standard deviation is a free
parameter.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule

from rlkd.constants import LANGS

STATE_METRICS: tuple[str, ...] = (
    *(f"macro_f1/{lang}" for lang in LANGS),
    "macro_f1/all",
    *(f"ce_loss/{lang}" for lang in LANGS),
    *(f"kd_loss/{lang}" for lang in LANGS),
)
# metrics, progress in [0, 1], and the current weights divided by L
STATE_SIZE = len(STATE_METRICS) + 1 + len(LANGS)

OBS = "obs"
ACTIONS = "actions"
MEAN = "action_mean"
LOG_STD = "action_log_std"


def encode_state(metrics: dict[str, float], progress: float, kd_weight: list[float]) -> np.ndarray:
    """Flatten a decision state into the policy's input; a missing or NaN metric becomes 0."""
    values = []
    for name in STATE_METRICS:
        value = metrics.get(name, math.nan)
        values.append(0.0 if value is None or not math.isfinite(value) else float(value))
    values.append(float(progress))
    values.extend(float(weight) / len(LANGS) for weight in kd_weight)
    return np.asarray(values, dtype=np.float32)


def weights_from_logits(logits: np.ndarray) -> np.ndarray:
    """Map weight logits z [..., L] to kd_weight = L * softmax(z)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return len(LANGS) * exponentials / exponentials.sum(axis=-1, keepdims=True)


class WeightPolicy(TorchRLModule):
    """Gaussian policy over weight logits: a small MLP for the mean, a learned state-free log std."""

    def setup(self) -> None:
        config = self.model_config or {}
        hidden = int(config.get("hidden_size", 32))
        init_log_std = float(config.get("init_log_std", -1.0))
        state_size = self.observation_space.shape[0]
        num_langs = self.action_space.shape[0]

        self.mean_net = torch.nn.Sequential(
            torch.nn.Linear(state_size, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, num_langs)
        )
        # Start at the uniform weighting: the last layer outputs z = 0 for every state.
        torch.nn.init.zeros_(self.mean_net[-1].weight)
        torch.nn.init.zeros_(self.mean_net[-1].bias)
        self.log_std = torch.nn.Parameter(torch.full((num_langs,), init_log_std))

    def _forward(self, batch, **kwargs):
        mean = self.mean_net(batch[OBS])
        return {MEAN: mean, LOG_STD: self.log_std.expand_as(mean)}

    def distribution(self, outputs: dict[str, torch.Tensor]) -> torch.distributions.Normal:
        return torch.distributions.Normal(outputs[MEAN], outputs[LOG_STD].exp())


def policy_spec(init_log_std: float, hidden_size: int = 32) -> RLModuleSpec:
    return RLModuleSpec(
        module_class=WeightPolicy,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (STATE_SIZE,), np.float32),
        action_space=gym.spaces.Box(-np.inf, np.inf, (len(LANGS),), np.float32),
        model_config={"hidden_size": hidden_size, "init_log_std": init_log_std},
    )
