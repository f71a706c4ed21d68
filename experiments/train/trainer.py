"""The training loop: `Trainer(run_dir)` builds a run from its config.json, `fit()` trains it.

It resumes from the newest valid checkpoint and writes `log.jsonl` and `result.json`
(experiments/runs/records.py; docs/training.md, "The run record"). On the CPU a run stopped
anywhere and resumed ends bit-identical to an uninterrupted one: data order and augmentation are
functions of (seed, epoch, position) (experiments/train/data.py), and every generator is reseeded
from (seed, rank, step) before each optimizer step.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn

import roadmap
from experiments.recipe import build_arguments, recipe_from_dict
from experiments.runs import code_digest, records, runstate
from experiments.runs.predictions import drop_unmatched
from experiments.train import checkpoint as ckpt
from experiments.train import wandb_log
from experiments.train.data import build_loaders
from experiments.train.distributed import RankContext
from experiments.train.evaluate import PerImage, evaluate, evaluate_epoch
from experiments.train.memory import keep_freed_memory
from experiments.train.parts import build_loss, build_optimization
from experiments.train.run_output import (
    describe,
    pct,
    progress_bar,
    record_epoch,
    result_record,
    show_step,
)
from experiments.train.signals import DeferredSignals, StopRequested
from roadmap.errors import UserError


class Trainer:
    """Train the run described by `<run_dir>/config.json`: `fit()`, `save_checkpoint(reason)`."""

    def __init__(self, run_dir: str | Path, threads_share: int = 0) -> None:
        self.run_dir = Path(run_dir).absolute()
        config = records.read_config(self.run_dir)
        if config is None:
            raise FileNotFoundError(f"{self.run_dir} has no {records.CONFIG} (see prepare_run)")
        self.config, self.seed = config, int(config["seed"])
        self.recipe = recipe_from_dict(config["recipe"])
        keep_freed_memory()  # before the data and the model are allocated
        self.rank_context = ctx = RankContext.start(self.recipe, threads_share)
        self.rank, self.world, self.main = ctx.rank, ctx.world, ctx.main
        self.device, self.hosts = ctx.device, ctx.hosts()
        self.accum = self.recipe.accum_for(self.world)
        self.effective_batch = self.world * self.recipe.batch_size * self.accum
        self.data = build_loaders(
            self.recipe, config, self.run_dir, self.rank, self.world, self.accum
        )
        self.steps_per_epoch = self.data.steps_per_epoch
        self.num_classes = self.data.info["classes"]
        self._setup_model()
        self._setup_optimization()
        self.state = ckpt.fresh_state(self.steps_per_epoch, self.effective_batch)
        # Several ranks stop together: a signal is held until they agree (see `_step`).
        self.signals = DeferredSignals(hold=self.world > 1)
        self._stop_agreed = False
        self._lock = threading.RLock()
        self._finished = False
        self._session_start = self._last_save = time.perf_counter()
        self.ckpt_dir = self.run_dir / records.CHECKPOINT_DIR
        self._trusted: set[Path] = set()  # checkpoints this process wrote or verified
        self.resumed_from = self._resume()
        self.state["code"] = code_digest.trained_with(self.state.get("code"))  # result's `code`

    def _setup_model(self) -> None:
        """The step's model (the same initial weights on every rank and restart), its EMA."""
        torch.manual_seed(self.seed)
        spec = roadmap.ArchSpec.from_dict(self.config["spec"])
        args = build_arguments(self.recipe)
        self.model = model = roadmap.build_model(spec, num_classes=self.num_classes, **args)
        self.params = roadmap.count_params(model)
        self.gflops = roadmap.count_gflops(model, image_size=self.recipe.image_size)
        model.to(self.device)
        if self.rank_context.channels_last:
            model.to(memory_format=torch.channels_last)
        self.ema = ModelEmaV3(model, decay=self.recipe.ema_decay) if self.recipe.ema else None

    def _setup_optimization(self) -> None:
        """Learning rate, optimizer and schedule, grad scaler, Mixup and loss, DDP, compile."""
        recipe = self.recipe
        self.lr = recipe.lr_for(self.effective_batch)
        self.optimizer, self.scheduler = build_optimization(
            recipe, self.model, self.lr, self.steps_per_epoch
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.rank_context.amp_dtype == torch.float16
        )
        self.mixup, self.criterion = build_loss(recipe, self.num_classes)
        train_model = self.rank_context.wrap(self.model)
        self.train_model = torch.compile(train_model) if recipe.compile else train_model

    # ---- checkpoints ---------------------------------------------------------------------------

    def _resume(self) -> Path | None:
        """Load the newest valid checkpoint, if any, and cut log.jsonl back to its epoch."""
        found = ckpt.load_agreed(
            self.ckpt_dir, self.main, self.rank_context.from_main, log=self._say
        )
        if found is None:
            if self.main:
                ckpt.truncate_log(self.run_dir, 0)
            return None
        payload, path = found
        self._trusted.add(path)
        saved = payload["state"]
        if (saved["steps_per_epoch"], saved["effective_batch"]) != (
            self.steps_per_epoch,
            self.effective_batch,
        ):
            raise UserError(
                f"{path} was written with {saved['steps_per_epoch']} steps per epoch of "
                f"{saved['effective_batch']} images, this job has {self.steps_per_epoch} of "
                f"{self.effective_batch}: resume it with the same devices and batch"
            )
        ckpt.restore(self, payload)
        if self.main:
            ckpt.truncate_log(self.run_dir, self.state["epoch"])
        return path

    def save_checkpoint(self, reason: str) -> Path | None:
        """Save the state of the last completed optimizer step; its path (None off rank 0).

        Safe from a signal handler in the main thread at any moment (`DeferredSignals` runs
        handlers between steps) and from other threads (they wait for the step to end). Called
        from inside a step itself, it saves nothing and returns the newest checkpoint.
        """
        if not self.main or self._finished:
            return None
        if self.signals.busy and threading.current_thread() is threading.main_thread():
            self._say(f"save_checkpoint({reason!r}) inside a step: keeping the last checkpoint")
            newest = records.list_checkpoints(self.ckpt_dir)
            return newest[0] if newest else None
        with self._critical():
            payload = ckpt.capture(self)
            state = payload["state"]
            state["wall_s"] = self.wall_seconds()
            meta = {"epoch": state["epoch"], "step_in_epoch": state["step_in_epoch"]}
            meta.update(reason=reason, time=records.now(), world_size=self.world)
            path = ckpt.save(self.ckpt_dir, state["global_step"], payload, meta)
            self._trusted.add(path)
            keep = self.recipe.keep_checkpoints
            ckpt.prune(self.ckpt_dir, keep, self._trusted, log=self._say)
            self._last_save = time.perf_counter()
        return path

    @contextlib.contextmanager
    def _critical(self) -> Iterator[None]:
        """A section that signal handlers and other threads' checkpoints wait for."""
        with self._lock, self.signals.critical():
            yield

    def wall_seconds(self) -> float:
        """Seconds of training so far, summed over restarts."""
        return self.state["wall_s"] + time.perf_counter() - self._session_start

    def _say(self, message: str) -> None:
        """Print one progress line (rank 0 only)."""
        if self.main:
            print(message, flush=True)

    # ---- the loop ------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to the last epoch (or the first non-finite loss); write and return the result."""
        done = runstate.done_result(self.run_dir)
        if done is not None:
            return done
        self._session_start = time.perf_counter()
        self._say(describe(self))
        self.signals.install()
        wandb_log.start(self)  # recipe.wandb (rank 0)
        error: BaseException | None = None
        try:
            while self.state["epoch"] < self.recipe.epochs:
                if self.state["step_in_epoch"] < self.steps_per_epoch:
                    failure = self._train_epoch()
                    if failure is not None:
                        return self._finish("failed", failure)
                t0 = time.perf_counter()
                metrics: dict[str, float] = {}
                if self.recipe.evaluates_after(self.state["epoch"] + 1):
                    metrics = evaluate_epoch(self)  # and its predictions.npz
                self.signals.raise_swallowed()  # before the epoch's end is recorded
                with self._critical():
                    self._end_epoch(metrics, time.perf_counter() - t0)
                # (A last checkpoint that the recipe would delete at once is not written.)
                ongoing = self.state["epoch"] < self.recipe.epochs
                if ongoing or self.recipe.keep_final_checkpoint:
                    self.save_checkpoint("epoch")
            return self._finish("done", None)
        except BaseException as err:
            error = err
            raise
        finally:
            wandb_log.finish(self, error)
            self.signals.uninstall()
            self.rank_context.close()

    def _train_epoch(self) -> str | None:
        """Train the rest of the current epoch; the failure reason, or None."""
        recipe, state = self.recipe, self.state
        self.data.sampler.set_epoch(
            state["epoch"], state["step_in_epoch"] * self.accum * recipe.batch_size
        )
        self.train_model.train()
        batches = iter(self.data.train)
        bar = progress_bar(self)
        while state["step_in_epoch"] < self.steps_per_epoch:
            t0 = time.perf_counter()
            with self._critical():
                failure = self._step(batches)
                seconds = time.perf_counter() - t0
                state["train_s"] += seconds
                state["epoch_train_s"] += seconds
                state["epoch_seconds"] += seconds
                if failure is None:  # with the step: a signal cannot come in between
                    wandb_log.log_step(self)
            if failure is not None:
                return failure
            self.signals.raise_swallowed()
            if self._stop_agreed:
                self._stop_with_the_others()
            show_step(self, bar)
            if time.perf_counter() - self._last_save > recipe.checkpoint_minutes * 60:
                self.save_checkpoint("periodic")
        if bar is not None:
            bar.close()
        return None

    def _step(self, batches: Iterator[Any]) -> str | None:
        """One optimizer step over `accum` micro-batches; the failure reason, or None."""
        state, recipe = self.state, self.recipe
        ckpt.seed_step(self.seed, self.rank, state["global_step"])
        self.scheduler.step_update(state["global_step"])
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        for i in range(self.accum):
            x, y = self.rank_context.to_device(*next(batches))
            if self.mixup is not None:
                x, y = self.mixup(x, y)
            last = i == self.accum - 1
            sync = contextlib.nullcontext()
            if self.world > 1 and not last:
                sync = self.train_model.no_sync()  # type: ignore[operator]
            with sync:
                with self.rank_context.autocast():
                    loss = self.criterion(self.train_model(x), y)
                held = self.signals.hold and self.signals.pending
                value, self._stop_agreed = self.rank_context.mean_loss_and_any_stop(
                    loss.item(), held
                )
                if not math.isfinite(value):
                    state["failed_iteration"] = state["global_step"] + 1
                    return (
                        f"non-finite loss ({value}) at iteration {state['global_step'] + 1} "
                        f"(epoch {state['epoch'] + 1}, step {state['step_in_epoch'] + 1}/"
                        f"{self.steps_per_epoch}, micro-batch {i + 1}/{self.accum})"
                    )
                self.scaler.scale(loss / self.accum).backward()
            losses.append(value)
        if recipe.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), recipe.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model, step=state["global_step"])
        images = self.accum * recipe.batch_size
        state.update(
            global_step=state["global_step"] + 1,
            step_in_epoch=state["step_in_epoch"] + 1,
            last_lr=self.optimizer.param_groups[0]["lr"],
            loss_sum=state["loss_sum"] + sum(losses),
            loss_count=state["loss_count"] + len(losses),
            train_images=state["train_images"] + images,
            epoch_images=state["epoch_images"] + images,
        )
        return None

    def _stop_with_the_others(self) -> None:
        """All ranks agreed to stop after this step: run the held handlers, then leave.

        Rank 0's handler (submitit's, the CLI's) checkpoints this step and exits; where it has
        none to run (the signal reached another rank) rank 0 checkpoints here. A rank whose
        handlers return, or whose signal has not arrived yet, stops with the others.
        """
        self.signals.release()
        self.save_checkpoint("stopped with the other ranks")
        raise StopRequested(
            f"a signal to the run (all {self.world} ranks stop after optimizer step "
            f"{self.state['global_step']})"
        )

    def evaluate(self, model: nn.Module, images: PerImage | None = None) -> dict[str, float]:
        """Top-1, top-5 (%) and mean loss of `model` on the validation set (all ranks).

        With `images`, also every image's label, pred and top5 (experiments/train/evaluate.py).
        """
        return evaluate(model, self.data.val, self.rank_context, self.num_classes, images)

    def _end_epoch(self, metrics: dict[str, float], eval_seconds: float) -> None:
        """Write the epoch's log.jsonl line, then move the state to the next epoch."""
        state = self.state
        state["epoch_seconds"] += eval_seconds
        row = {
            "epoch": state["epoch"] + 1,
            "iterations": state["global_step"],
            "lr": state["last_lr"],
            "train_loss": state["loss_sum"] / max(state["loss_count"], 1),
            **metrics,
            "img_s": state["epoch_images"] * self.world / max(state["epoch_train_s"], 1e-9),
            "seconds": state["epoch_seconds"],
            "time": records.now(),
        }
        if self.main:
            self._say(record_epoch(self, row))
        seen = [x for x in (state["best_top1"], metrics.get("top1")) if x is not None]
        state.update(ckpt.epoch_counters())
        state.update(
            epoch=state["epoch"] + 1,
            step_in_epoch=0,
            best_top1=max(seen, default=None),
            last_eval=metrics or state["last_eval"],  # {}: not evaluated (eval_every)
        )

    def _finish(self, status: str, reason: str | None) -> dict[str, Any]:
        """Write result.json (rank 0), drop the checkpoints if the recipe says so; the result."""
        result = result_record(self, status, reason)
        if self.main:
            drop_unmatched(self.run_dir, result)
            records.write_result(self.run_dir, result)
            if status == "done" and not self.recipe.keep_final_checkpoint:
                ckpt.remove_all(self.ckpt_dir)
            records.remove_temp_files(self.run_dir)
            self._say(
                f"{status}: top-1 {pct(result['top1'])} (best {pct(result['best_top1'])}) "
                f"in {result['wall_s']:.1f} s -> {self.run_dir / records.RESULT}"
                + (f"\n  {reason}" if reason else "")
            )
        self._finished = True
        return result

    def record_failure(self, reason: str) -> None:
        """Record an exception that ended the run as a failed result (rank 0, if none yet)."""
        if self.main and not self._finished:
            known = result_record(self, "failed", reason)
            drop_unmatched(self.run_dir, known)
            runstate.write_failure(self.run_dir, reason, known)
