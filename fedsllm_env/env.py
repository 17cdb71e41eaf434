"""FedsLLMEnv: one step = one split-federated LoRA training round over a wireless network."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from fedsllm_env.backends import TrainingBackend, make_backend
from fedsllm_env.calibration import Calibration, load_calibration
from fedsllm_env.channel import ChannelModel, make_channel_model
from fedsllm_env.codecs import ActionCodec, Allocator, make_action_codec
from fedsllm_env.config import FedsLLMConfig, check_memory, check_seed, estimate_env_bytes
from fedsllm_env.delay import check_feasible, expected_total_delay_s, round_delay
from fedsllm_env.errors import ConfigError, NonFiniteError, ResetNeeded
from fedsllm_env.profile import ModelShape
from fedsllm_env.render import render_decision
from fedsllm_env.reward import reward_terms, total_reward
from fedsllm_env.spaces import ObservationCodec
from fedsllm_env.types import ChannelState, Decision, DelayBreakdown, Scenario

__all__ = ["FedsLLMEnv"]


def _check_lora_targets(config: FedsLLMConfig, shape: ModelShape) -> None:
    """ConfigError naming ``model.lora_target_modules`` when a name selects no module of ``shape``."""
    try:
        shape.resolve_targets(tuple(config.model.lora_target_modules))
    except ValueError as e:
        raise ConfigError(f"ModelConfig.lora_target_modules={list(config.model.lora_target_modules)}: {e}") from None


def _plain(value: int | np.ndarray) -> int | np.ndarray:
    """An int, or a (K,) int64 array for a per-client cut or rank (Gymnasium's vector envs stack it into (B, K))."""
    return int(value) if np.ndim(value) == 0 else np.array(value, dtype=np.int64)


def _shown(value: int | np.ndarray) -> str:
    """``16``, or ``64/32/16`` for a per-client cut or rank."""
    return str(int(value)) if np.ndim(value) == 0 else "/".join(str(int(v)) for v in np.asarray(value).tolist())


class FedsLLMEnv(gym.Env[np.ndarray, np.ndarray]):
    """Split-federated LoRA fine-tuning of a GPT-2 style LLM over a wireless cell.

    Each ``step`` is one training round: the action fixes subchannel owners and transmit powers on
    the main-server (MS) and federated-server (FS) uplinks, the cut layer and the LoRA rank; the
    backend trains one round (real torch training or the calibrated surrogate); the delay model
    prices it. The observation layout is documented in :mod:`fedsllm_env.spaces`, the action layouts in
    :mod:`fedsllm_env.codecs` (one codec per ``action_mode``; ``decode`` returns a feasible decision).

    Reward: ``-delay_weight * T_round / delay_scale_s`` (+ optional progress bonus), so with the
    defaults the episode return is minus the total training delay sum_t T_round(t) / scale.
    ``info["expected_total_delay_s"]`` = E(r) * T_round is the paper's objective for the current
    decision. Terminated when the validation loss reaches the target; truncated at
    ``training.max_rounds`` rounds. After either, ``step`` raises :class:`~fedsllm_env.errors.ResetNeeded`
    until ``reset`` is called (Gymnasium's convention; SB3's vector envs reset for you).

    Args:
        config: a :class:`FedsLLMConfig`, a (nested) dict of overrides, or None for the defaults.
        backend: a prebuilt :class:`TrainingBackend` (e.g. an engine around a tiny test model);
            default: built from ``config.mode``.
        calibration: E(r) / loss-curve calibration; default: ``config.calibration_path`` or the
            measured table shipped with the package.
        allocator: hybrid mode only: an :class:`~fedsllm_env.codecs.Allocator` filling subchannels and power
            for the agent's (split, rank), or the name of one, or None for the default (the paper's
            optimizer, see :mod:`fedsllm_env.codecs.hybrid`).
        render_mode: None, "ansi" (a text line per round) or "rgb_array" (a small picture of the last
            decision, :mod:`fedsllm_env.render`; SB3's ``make_vec_env`` asks for it by default).
        variant: config fields fixed by a registered id (``mode``, ``action_mode``); they override ``config``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}

    def __init__(self, config: FedsLLMConfig | dict[str, Any] | None = None, *,
                 backend: TrainingBackend | None = None, calibration: Calibration | None = None,
                 allocator: Allocator | str | None = None, render_mode: str | None = None,
                 variant: dict[str, Any] | None = None):
        if config is None:
            config = FedsLLMConfig()
        elif isinstance(config, dict):
            config = FedsLLMConfig.from_dict(config)
        elif not isinstance(config, FedsLLMConfig):
            raise TypeError(f"config must be a FedsLLMConfig, dict or None, got {type(config).__name__}")
        if variant:  # the registered id fixes mode / action_mode
            config = config.replace(**variant)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        w = config.wireless
        check_memory(estimate_env_bytes(config), f"an env of K = {w.num_clients}, M = {w.num_subchannels_ms}, "
                     f"N = {w.num_subchannels_fs}", "lower wireless.num_clients / num_subchannels_ms / num_subchannels_fs")
        self.channel_model: ChannelModel = make_channel_model(config.wireless, config.compute)
        self.calibration = calibration if calibration is not None else load_calibration(config.calibration_path)
        positions = self.calibration.shape.n_positions
        if backend is None and config.mode == "surrogate" and config.training.seq_len > positions:
            raise ConfigError(f"TrainingConfig.seq_len must be <= {positions} (the positions of the calibrated model, "
                              f"{self.calibration.path}), got {config.training.seq_len}; lower training.seq_len or "
                              "calibrate a model with more positions (`fedsllm calibrate`)")
        if backend is None and config.mode == "real":
            from fedsllm_env.splitfed.devices import check_device_available  # DependencyNotInstalled without torch

            check_device_available(config.model.device)  # before any data, model or cache is built
        if backend is None and config.mode == "surrogate":
            _check_lora_targets(config, self.calibration.shape)
        self.backend = backend if backend is not None else make_backend(config, self.calibration)
        self.shape: ModelShape = self.backend.shape
        _check_lora_targets(config, self.shape)
        if self.shape != self.calibration.shape:
            warnings.warn(f"backbone shape {self.shape} differs from the calibrated one {self.calibration.shape}; "
                          "E(r) and the surrogate come from another model (run `fedsllm calibrate`)", stacklevel=2)
        if not 1 <= config.model.initial_split <= self.shape.n_layer - 1:
            raise ConfigError(f"ModelConfig.initial_split must be in [1, {self.shape.n_layer - 1}] for a "
                              f"{self.shape.n_layer}-block model, got {config.model.initial_split}")
        self.target_val_loss = config.training.target_val_loss or self.calibration.target_val_loss
        self._obs_codec = ObservationCodec(config, self.shape)
        self._act_codec = make_action_codec(config, self.shape, allocator)
        self.observation_space = self._obs_codec.space()
        self.action_space = self._act_codec.space
        self._scenario: Scenario | None = None
        self._channel: ChannelState | None = None
        self._channel_hidden: Any = None  # the channel model's own state; agents see only self._channel
        self.last_decision: Decision | None = None
        self.last_breakdown: DelayBreakdown | None = None
        self.last_timing: dict[str, float] = {}
        """Wall-clock measurements of the last round (real mode: ``wall_s``, ``train_s``, ...), seconds."""
        self._episode_over: str = ""
        """"terminated" / "truncated" once the episode has ended ("" while it runs)."""

    # ---- public helpers --------------------------------------------------------------------------
    @property
    def scenario(self) -> Scenario:
        """The current episode's scenario (after reset)."""
        if self._scenario is None:
            raise ResetNeeded("Call reset() before reading the scenario.")
        return self._scenario

    @property
    def channel(self) -> ChannelState:
        """The channel/load state the next action is applied to."""
        if self._channel is None:
            raise ResetNeeded("Call reset() before reading the channel.")
        return self._channel

    @property
    def action_codec(self) -> ActionCodec:
        """Decoder/encoder of this env's actions."""
        return self._act_codec

    @property
    def observation_codec(self) -> ObservationCodec:
        """Encoder/decoder of this env's observations."""
        return self._obs_codec

    def rounds_needed(self, rank: int | np.ndarray, split: int | np.ndarray | None = None) -> float:
        """E(r, c) from the calibration for this env's data partition (``split=None``: pooled over measured
        cuts); ``inf`` where the calibration is censored (no convergence within its horizon). A per-client
        profile ((K,) arrays) gets the surrogate's E of that profile
        (:meth:`~fedsllm_env.calibration.Calibration.profile_rounds_needed`)."""
        part = self.config.training.partition
        part = part if part in self.calibration.partitions else None
        if np.ndim(rank) > 0 or np.ndim(split) > 0:
            k = self.config.wireless.num_clients
            cuts = np.broadcast_to(np.asarray(self.config.model.initial_split if split is None else split), (k,))
            return self.calibration.profile_rounds_needed(cuts, np.broadcast_to(np.asarray(rank), (k,)), part,
                                                          self.config.model.aggregation)
        return self.calibration.rounds_needed(rank, split, part)

    def action_masks(self) -> np.ndarray:
        """Valid choices of a MultiDiscrete / hybrid action (sb3-contrib MaskablePPO); see the codec's
        ``action_masks``. InvalidActionError in Box mode."""
        return self._act_codec.action_masks()

    # ---- gym API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw a new scenario and channel, restart fine-tuning from fresh adapters.

        ``seed``: an int >= 0 (numpy integers too) or None; SeedError for a bool, a float or a negative number."""
        super().reset(seed=check_seed(seed, "reset(seed=...)"))
        cfg = self.config
        self._scenario = self.channel_model.draw_scenario(self.np_random)
        self._channel_hidden = self.channel_model.initial_state(self.np_random, self._scenario)
        self._channel = self.channel_model.observe(self._channel_hidden)
        self._initial_val_loss = float(self.backend.reset(int(self.np_random.integers(2**31 - 1))))
        self._val_loss = self._initial_val_loss
        self._split, self._rank = cfg.model.initial_split, cfg.model.initial_rank
        self._rounds = 0
        self._cumulative_delay_s = 0.0
        self.last_decision = None
        self.last_breakdown = None
        self._episode_over = ""
        info = {"val_loss": self._val_loss, "target_val_loss": float(self.target_val_loss)}
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Decode the action into a feasible decision (the codec's projection) and run one round with it."""
        self._check_running("step")
        return self._play_round(self._act_codec.decode(action, self._scenario, self._channel))

    def step_decision(self, decision: Decision) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one round with an explicit :class:`Decision` (must be feasible, else InfeasibleDecisionError)."""
        self._check_running("step_decision")
        check_feasible(decision, self._scenario, self.shape, self.config)
        return self._play_round(decision)

    def render(self) -> str | np.ndarray | None:
        """ANSI text summary (``"ansi"``) or ``(H, W, 3)`` uint8 frame (``"rgb_array"``) of the last round."""
        if self.render_mode == "rgb_array":
            w = self.config.wireless
            pmax = None if self._scenario is None else self._scenario.client_max_power_w
            return render_decision(self.last_decision, (w.num_subchannels_ms, w.num_subchannels_fs),
                                   self.shape.n_layer, self.config.model.ranks, pmax)
        if self.render_mode != "ansi":
            return None
        if self.last_breakdown is None:
            return f"round 0 | val_loss {getattr(self, '_val_loss', float('nan')):.4f}"
        b = self.last_breakdown
        return (f"round {self._rounds} | split {_shown(self._split)} rank {_shown(self._rank)} | val_loss "
                f"{self._val_loss:.4f} "
                f"| T_round {b.round_s:.4f} s (iter {b.iteration_s:.4f} s, LoRA up {np.max(b.lora_upload_s):.4f} s)")

    # ---- stages ----------------------------------------------------------------------------------
    def _check_running(self, method: str) -> None:
        """ResetNeeded before the first reset and after the episode ended (no round past the end)."""
        if self._channel is None or self._scenario is None:
            raise ResetNeeded(f"Call reset() before using {method}().")
        if self._episode_over:
            raise ResetNeeded(f"the episode is over ({self._episode_over} after round {self._rounds}); call reset() "
                              f"before using {method}() again")

    def _play_round(self, decision: Decision) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Price, train and advance one round with a feasible ``decision``."""
        assert self._channel is not None and self._scenario is not None
        cfg = self.config
        breakdown = round_delay(decision, self._channel, self._scenario, self.shape, cfg)
        outcome = self.backend.run_round(decision.split, decision.rank)
        terms = reward_terms(breakdown.round_s, self._val_loss, outcome.val_loss, self._initial_val_loss, cfg.reward)
        self._channel_hidden = self.channel_model.next_state(self.np_random, self._channel_hidden, self._scenario)
        self._channel = self.channel_model.observe(self._channel_hidden)
        self._val_loss, self._split, self._rank = outcome.val_loss, decision.split, decision.rank
        self._rounds += 1
        self._cumulative_delay_s += breakdown.round_s
        self.last_decision, self.last_breakdown = decision, breakdown
        self.last_timing = {k: float(v) for k, v in outcome.measured.items() if k.endswith("_s")}
        terminated = bool(outcome.val_loss <= self.target_val_loss)
        truncated = bool(not terminated and self._rounds >= cfg.training.max_rounds)
        self._episode_over = "terminated" if terminated else ("truncated" if truncated else "")
        e_r = self.rounds_needed(decision.rank, decision.split)
        info = {
            "round": self._rounds,
            "split": _plain(decision.split),
            "rank": _plain(decision.rank),
            "train_loss": float(outcome.train_loss),
            "val_loss": float(outcome.val_loss),
            "target_val_loss": float(self.target_val_loss),
            "round_delay_s": float(breakdown.round_s),
            "cumulative_delay_s": float(self._cumulative_delay_s),
            "expected_rounds": float(e_r),
            "expected_total_delay_s": float(expected_total_delay_s(e_r, breakdown.round_s)),
            "reward_terms": terms,
            "delay_breakdown": breakdown.as_info(),
            # measured payloads only: wall-clock times would make info differ between identical runs
            "measured": {k: v for k, v in outcome.measured.items() if not k.endswith("_s")},
        }
        return self._observe(), total_reward(terms), terminated, truncated, info

    def _observe(self) -> np.ndarray:
        obs = self._obs_codec.encode(self.channel, self.scenario, self._split, self._rank, self._val_loss,
                                     self._initial_val_loss, self._rounds)
        if not np.isfinite(obs).all():  # never hand NaN/inf to an agent
            raise NonFiniteError(f"observation has NaN/inf at indices {np.nonzero(~np.isfinite(obs))[0].tolist()} "
                                 f"(validation loss {self._val_loss}, initial {self._initial_val_loss})")
        return obs
