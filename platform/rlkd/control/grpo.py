"""GRPO for KD weightings: group-relative advantages, a clipped ratio and a KL penalty, no value network.

Follows the objective of DeepSeekMath (Shao et al., 2024, "GRPO"), with one
group of G candidate weightings per decision instead of G completions:

    A_i   = (r_i - mean(r)) / max(std(r), std_floor)
    ratio = exp(logp_new(a_i) - logp_old(a_i))
    loss  = -mean_i min(ratio * A_i, clip(ratio, 1 - eps, 1 + eps) * A_i) + beta * mean_i k3_i
    k3_i  = exp(logp_ref(a_i) - logp_new(a_i)) - (logp_ref(a_i) - logp_new(a_i)) - 1

k3 is the unbiased, always non-negative estimator of KL(new || ref) of
Schulman's "Approximating KL Divergence" note.
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from rlkd.control.policy import ACTIONS, WeightPolicy

OLD_LOGP = "old_logp"
REF_LOGP = "ref_logp"
ADVANTAGES = "advantages"


def group_advantages(rewards: np.ndarray, std_floor: float) -> np.ndarray:
    """Normalise rewards within a group: (r - mean) / max(std, std_floor).

    Equal rewards give advantages of exactly 0. With the population std no
    advantage exceeds sqrt(G - 1) in magnitude, because |r_i - mean| is at
    most sqrt(G - 1) * std, and the floor only shrinks the ratio further.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    centred = rewards - rewards.mean()
    if np.all(centred == 0):
        return np.zeros_like(rewards)
    return centred / max(float(rewards.std()), std_floor)


class GRPOLearner(TorchLearner):
    """A `TorchLearner` whose loss is the GRPO objective above.

    Reads `clip_epsilon` and `kl_beta` from the algorithm config's
    `learner_config_dict`; the batch carries actions, old and reference
    log-probabilities and advantages.
    """

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        settings = config.learner_config_dict
        clip_epsilon = settings["clip_epsilon"]
        kl_beta = settings["kl_beta"]

        module: WeightPolicy = self.module[module_id]
        logp = module.distribution(fwd_out).log_prob(batch[ACTIONS]).sum(dim=-1)
        ratio = torch.exp(logp - batch[OLD_LOGP])
        advantages = batch[ADVANTAGES]
        surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - clip_epsilon, 1 + clip_epsilon) * advantages)

        log_ratio_ref = batch[REF_LOGP] - logp
        k3 = torch.exp(log_ratio_ref) - log_ratio_ref - 1
        loss = -surrogate.mean() + kl_beta * k3.mean()

        clipped = ((ratio - 1).abs() > clip_epsilon).float().mean()
        self.metrics.log_value((module_id, "kl_to_reference"), k3.mean().item(), window=1)
        self.metrics.log_value((module_id, "clip_fraction"), clipped.item(), window=1)
        self.metrics.log_value((module_id, "policy_loss"), loss.item(), window=1)
        return loss
