"""The controller: samples groups of KD weightings, turns probe results into rewards, and updates GRPO.

`WeightController` is plain Python, so tests can drive it directly.
`ControllerActor` wraps it as a named Ray actor with `num_cpus=0`, so it
never takes a CPU that a Train worker needs. Workers call the actor from
every rank with the same decision id: the first call of a decision does the
work and later calls get the stored answer, so no rank waits for another
rank's call to reach the actor.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from rlkd import metrics as metric_specs
from rlkd.config import ControllerConfig
from rlkd.control.grpo import ADVANTAGES, OLD_LOGP, REF_LOGP, GRPOLearner, group_advantages
from rlkd.control.policy import ACTIONS, OBS, WeightPolicy, encode_state, policy_spec, weights_from_logits
from rlkd.control.rewards import RewardSettings, get_reward_design
from rlkd.metrics import RunMetrics

logger = logging.getLogger(__name__)


@dataclass
class Decision:
    """One decision: the state, the sampled group, the rewards and the weights applied afterwards."""

    decision_id: int
    state: list[float]
    logits: list[list[float]]
    candidates: list[list[float]]
    old_logp: list[float]
    rewards: list[float] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    applied: list[float] = field(default_factory=list)
    learner: dict[str, float] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)  # what the per-decision log line shows


def weight_entropy(kd_weight: list[float]) -> float:
    """Entropy in nats of kd_weight / sum(kd_weight): log(L) for uniform weights, 0 when one language takes all."""
    shares = np.asarray(kd_weight, dtype=np.float64)
    shares = shares / shares.sum()
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())


class WeightController:
    def __init__(self, config: ControllerConfig, kd_weight_init: list[float], seed: int):
        self.config = config
        self.reward_design = get_reward_design(config.reward_design)
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)  # policy initialisation
        # Sampling draws from a private generator, so a checkpoint can hold and restore it exactly.
        self.generator = torch.Generator().manual_seed(seed)

        algorithm_config = (
            AlgorithmConfig()
            .framework("torch")
            .training(lr=config.learning_rate)
            .learners(learner_config_dict={"clip_epsilon": config.clip_epsilon, "kl_beta": config.kl_beta})
        )
        self.learner = GRPOLearner(config=algorithm_config, module_spec=policy_spec(config.init_log_std))
        self.learner.build()
        self.reference: WeightPolicy = copy.deepcopy(self.policy)
        self.kd_weight_init = list(kd_weight_init)
        self.decisions: dict[int, Decision] = {}
        self.updates = 0
        self.zero_spread_groups = 0

    @property
    def policy(self) -> WeightPolicy:
        return self.learner.module[DEFAULT_MODULE_ID]

    def propose(self, decision_id: int, state: dict[str, Any]) -> list[list[float]]:
        """Sample G candidate weightings for this decision, once: repeated calls return the same group."""
        if decision_id in self.decisions:
            return self.decisions[decision_id].candidates

        observation = encode_state(state["metrics"], state["progress"], state["kd_weight"])
        with torch.no_grad():
            outputs = self.policy.forward_inference({OBS: torch.from_numpy(observation)[None]})
            distribution = self.policy.distribution(outputs)
            noise = torch.randn((self.config.group_size, *distribution.mean.shape[1:]), generator=self.generator)
            logits = distribution.mean[0] + distribution.stddev[0] * noise
            old_logp = distribution.log_prob(logits[:, None, :]).sum(dim=-1)[:, 0]

        candidates = weights_from_logits(logits.numpy().astype(np.float64))
        self.decisions[decision_id] = Decision(
            decision_id=decision_id,
            state=observation.tolist(),
            logits=logits.tolist(),
            candidates=candidates.tolist(),
            old_logp=old_logp.tolist(),
        )
        return self.decisions[decision_id].candidates

    def update(self, decision_id: int, outcome: dict[str, Any]) -> list[float]:
        """Score the probes, run one GRPO update and return the weights to apply (once per decision)."""
        decision = self.decisions.get(decision_id)
        if decision is None:
            raise KeyError(f"no candidates were proposed for decision {decision_id}")
        if decision.applied:
            return decision.applied

        settings = self._reward_settings(outcome)
        rewards = [float(self.reward_design(outcome["before"], after, settings)) for after in outcome["after"]]
        decision.rewards = rewards
        kept = [index for index, reward in enumerate(rewards) if math.isfinite(reward)]
        decision.excluded = [index for index in range(len(rewards)) if index not in kept]
        if decision.excluded:
            logger.warning("decision %d: rewards of candidates %s are not finite and are left out of the group",
                           decision_id, decision.excluded)

        if len(kept) >= 2:
            decision.learner = self._learn(decision, kept)
        decision.applied = self._choose(decision, kept)
        decision.summary = self._summarise(decision, kept)
        logger.info(
            "decision %d: reward mean %.4g std %.3g (zero-spread groups %.0f%%), KL to reference %.3g, "
            "clip fraction %.2f, weight entropy %.3f, applied kd_weight %s", decision_id,
            decision.summary["reward_mean"], decision.summary["reward_std"], 100 * decision.summary["zero_spread_share"],
            decision.summary["kl_to_reference"], decision.summary["clip_fraction"], decision.summary["weight_entropy"],
            np.round(decision.applied, 3).tolist(),
        )
        return decision.applied

    def _reward_settings(self, outcome: dict[str, Any]) -> RewardSettings:
        """Read the scored metric and the compute spent per candidate from the workers' outcome."""
        metric = outcome.get("metric") or self.config.reward_f1
        cost_examples = float(outcome.get("cost_examples", 0.0)) + float(outcome.get("teacher_forwards", 0.0))
        return RewardSettings(metric, self.config.balanced_lambda, self.config.cost_coefficient, cost_examples / 1000)

    def _summarise(self, decision: Decision, kept: list[int]) -> dict[str, float]:
        rewards = np.asarray([decision.rewards[index] for index in kept], dtype=np.float64)
        zero_spread = rewards.size < 2 or float(rewards.max() - rewards.min()) == 0.0
        self.zero_spread_groups += int(zero_spread)
        return {
            "reward_mean": float(rewards.mean()) if rewards.size else math.nan,
            "reward_std": float(rewards.std()) if rewards.size else math.nan,
            "zero_spread": float(zero_spread),
            "zero_spread_share": self.zero_spread_groups / max(1, len(self.decisions)),
            "kl_to_reference": decision.learner.get("kl_to_reference", math.nan),
            "clip_fraction": decision.learner.get("clip_fraction", math.nan),
            "weight_entropy": weight_entropy(decision.applied),
            "excluded": float(len(decision.excluded)),
        }

    def get_state(self) -> dict[str, Any]:
        """Everything a resumed run needs: policy, learner (with its optimiser), reference, counters, history."""
        return {
            "learner": self.learner.get_state(),
            "reference": {name: tensor.clone() for name, tensor in self.reference.state_dict().items()},
            "decisions": {decision_id: asdict(decision) for decision_id, decision in self.decisions.items()},
            "updates": self.updates,
            "zero_spread_groups": self.zero_spread_groups,
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.learner.set_state(state["learner"])
        self.reference.load_state_dict(state["reference"])
        self.decisions = {int(decision_id): Decision(**record) for decision_id, record in state["decisions"].items()}
        self.updates = int(state["updates"])
        self.zero_spread_groups = int(state["zero_spread_groups"])
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])

    def _learn(self, decision: Decision, kept: list[int]) -> dict[str, float]:
        rewards = np.asarray([decision.rewards[index] for index in kept])
        advantages = group_advantages(rewards, self.config.std_floor)
        observations = np.repeat(np.asarray(decision.state, dtype=np.float32)[None], len(kept), axis=0)
        actions = np.asarray([decision.logits[index] for index in kept], dtype=np.float32)
        with torch.no_grad():
            reference = self.reference.distribution(self.reference.forward_train({OBS: torch.from_numpy(observations)}))
            ref_logp = reference.log_prob(torch.from_numpy(actions)).sum(dim=-1).numpy()

        batch = SampleBatch({
            OBS: observations,
            ACTIONS: actions,
            OLD_LOGP: np.asarray([decision.old_logp[index] for index in kept], dtype=np.float32),
            REF_LOGP: ref_logp.astype(np.float32),
            ADVANTAGES: advantages.astype(np.float32),
        })
        results = self.learner.update(
            batch=MultiAgentBatch({DEFAULT_MODULE_ID: batch}, env_steps=len(kept)),
            num_epochs=self.config.update_epochs,
        )
        self.updates += 1
        if self.updates % self.config.ref_update_interval == 0:
            self.reference.load_state_dict(self.policy.state_dict())

        module_results = results.get(DEFAULT_MODULE_ID, {})
        learner = {name: float(_peek(module_results.get(name))) for name in ("kl_to_reference", "clip_fraction", "policy_loss")}
        learner["reward_mean"] = float(rewards.mean())
        learner["reward_std"] = float(rewards.std())
        learner["log_std_mean"] = float(self.policy.log_std.detach().mean())
        return learner

    def _choose(self, decision: Decision, kept: list[int]) -> list[float]:
        rewards = [decision.rewards[index] for index in kept]
        # A group without spread names no best candidate; the policy mean is then the informed choice.
        if self.config.applied == "best" and kept and max(rewards) > min(rewards):
            best = max(kept, key=lambda index: decision.rewards[index])
            return list(decision.candidates[best])
        with torch.no_grad():
            mean = self.policy.forward_inference({OBS: torch.tensor([decision.state])})["action_mean"][0]
        return weights_from_logits(mean.numpy().astype(np.float64)).tolist()

    def history(self) -> list[dict[str, Any]]:
        return [asdict(decision) for _, decision in sorted(self.decisions.items())]


def _peek(value: Any) -> float:
    """Read a reduced RLlib metric, which may be a Stats object or a plain number."""
    if value is None:
        return math.nan
    if hasattr(value, "peek"):
        value = value.peek()
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@ray.remote(num_cpus=0)
class ControllerActor:
    """Ray actor, named per run, that serves one `WeightController` to the Train workers.

    With a snapshot path, the actor writes its full state there after every
    update, and a restarted actor (Ray restarts it up to `max_restarts`
    times) starts from that snapshot instead of from scratch.
    """

    def __init__(self, config: ControllerConfig, kd_weight_init: list[float], seed: int,
                 snapshot_path: str | None = None, crash_at_decision: int | None = None,
                 crash_marker: str | None = None, run: str | None = None):
        logging.basicConfig(level=logging.INFO)
        self.controller = WeightController(config, kd_weight_init, seed)
        self.metrics = RunMetrics(run or "controller", "rl")
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self.crash_at_decision = crash_at_decision
        self.crash_marker = Path(crash_marker) if crash_marker else None
        self.restores = 0
        self.restored_from_snapshot = False
        if self.snapshot_path is not None and self.snapshot_path.is_file():
            self.controller.set_state(torch.load(self.snapshot_path, map_location="cpu", weights_only=False))
            self.restored_from_snapshot = True
            logger.warning("controller restarted from its snapshot %s with %d decisions", self.snapshot_path,
                           len(self.controller.decisions))

    def propose(self, decision_id: int, state: dict[str, Any]) -> list[list[float]]:
        return self.controller.propose(decision_id, state)

    def update(self, decision_id: int, outcome: dict[str, Any]) -> list[float]:
        self._maybe_crash(decision_id)
        known = self.controller.decisions.get(decision_id)
        first_update = known is None or not known.applied  # every rank calls update; export each decision once
        applied = self.controller.update(decision_id, outcome)
        self._snapshot()
        if first_update:
            self._export(self.controller.decisions[decision_id].summary)
        return applied

    def history(self) -> list[dict[str, Any]]:
        return self.controller.history()

    def get_state(self) -> dict[str, Any]:
        return self.controller.get_state()

    def set_state(self, state: dict[str, Any]) -> bool:
        self.controller.set_state(state)
        self.restores += 1
        logger.warning("controller restored from a checkpoint with %d decisions", len(self.controller.decisions))
        self._snapshot()
        return True

    def restore_count(self) -> int:
        return self.restores

    def was_restarted(self) -> bool:
        return self.restored_from_snapshot

    def _export(self, summary: dict[str, float]) -> None:
        self.metrics.set(metric_specs.REWARD_MEAN, summary.get("reward_mean"))
        self.metrics.set(metric_specs.REWARD_STD, summary.get("reward_std"))
        self.metrics.set(metric_specs.KL_TO_REFERENCE, summary.get("kl_to_reference"))
        self.metrics.set(metric_specs.CLIP_FRACTION, summary.get("clip_fraction"))
        self.metrics.inc(metric_specs.DECISIONS)

    def _snapshot(self) -> None:
        if self.snapshot_path is None:
            return
        # Written to a temporary name and renamed, so a crash mid-write leaves the previous snapshot whole.
        staging = self.snapshot_path.with_name(self.snapshot_path.name + ".partial")
        staging.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.controller.get_state(), staging)
        os.replace(staging, self.snapshot_path)

    def _maybe_crash(self, decision_id: int) -> None:
        """Kill this process once at the configured decision: fault injection for tests."""
        if self.crash_at_decision != decision_id or self.crash_marker is None or self.crash_marker.exists():
            return
        self.crash_marker.touch()
        os._exit(1)


def start_controller(name: str, config: ControllerConfig, kd_weight_init: list[float], seed: int, *,
                     snapshot_path: str | Path | None = None, max_restarts: int = 0,
                     crash_at_decision: int | None = None, crash_marker: str | Path | None = None,
                     run: str | None = None):
    """Start the named controller actor for one run; the caller kills it when the run ends.

    `run` is the `run` label of the actor's exported metrics, the same as the Train run's.
    """
    return ControllerActor.options(name=name, lifetime=None, max_restarts=max_restarts, max_task_retries=0).remote(
        config, kd_weight_init, seed, str(snapshot_path) if snapshot_path else None, crash_at_decision,
        str(crash_marker) if crash_marker else None, run,
    )
