"""Train a new model version from a parent on a batch of documents: DiSC, or a fine-tuning baseline.

Reads top to bottom: configuration → setup (parent, model, teacher, documents) → resume →
loop (one optimizer step per document) → artifact.

The parent is the base model, or the base plus a previous version's artifact; the teacher is
that parent, frozen. With LoRA (the default) the teacher is the student's own PeftModel: the
adapter switched off for a first version, the parent adapter loaded frozen beside the trainable
one for a chained version. With full fine-tuning the teacher is a frozen copy of the parent.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from disc_engine.files import atomic_directory

# torch is imported inside the functions that train, so that importing the engine's options
# (disc_engine.options, which the service uses) never loads it.
from disc_engine.objectives import RunContext
from disc_engine.options import (
    DEFAULT_LEARNING_RATE,  # noqa: F401  (re-exported)
    RESULT_NEUTRAL_FIELDS,
    TrainConfig,
)
from disc_engine.replay import ChatReplay
from disc_engine.splitting import EmptyDocumentError, prepare_document

if TYPE_CHECKING:
    from disc_engine.budget import EpochSelector

CHECKPOINT_FORMAT = 1
_CHECKPOINT_PREFIX = "ckpt-"


class TrainingDiverged(FloatingPointError):
    """The loss became non-finite or exploded far above its own starting level."""


class NothingTrained(ValueError):
    """Every document was skipped: an artifact would only copy its parent."""


# A run has diverged when its loss explodes relative to its own history. Learning lowers the
# loss; a rate too high for the model multiplies it (LoRA at 1.0 on the default model: 2.9 -> 16
# over eight steps; full fine-tuning of the tiny model: 0.008 -> 14 in one step). Documents differ
# in loss by large factors, so the rules compare medians and add an absolute margin:
# * sudden: one step's loss above SUDDEN_FACTOR x the median of the steps just before;
# * sustained: the median of the last WINDOW steps above SUSTAINED_FACTOR x the median of the
#   first 2 x WINDOW steps.
SUDDEN_FACTOR = 50.0
SUSTAINED_FACTOR = 4.0
DIVERGENCE_MARGIN = 2.0
DIVERGENCE_WINDOW = 4


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def check_divergence(losses: list[float], learning_rate: float) -> None:
    """Raise TrainingDiverged when the newest loss, or the recent ones, exploded."""
    step, advice = len(losses), f"(learning rate {learning_rate:g}); use a lower learning rate"
    if step >= 2:
        before = _median(losses[-1 - 4 * DIVERGENCE_WINDOW:-1])   # a bounded window: cheap on long runs
        if losses[-1] > SUDDEN_FACTOR * before + DIVERGENCE_MARGIN:
            raise TrainingDiverged(f"training diverged at step {step}: the loss jumped to {losses[-1]:.3g} from a "
                                   f"median of {before:.3g} over the steps before {advice}")
    if step >= 3 * DIVERGENCE_WINDOW:
        start, recent = _median(losses[:2 * DIVERGENCE_WINDOW]), _median(losses[-DIVERGENCE_WINDOW:])
        if recent > SUSTAINED_FACTOR * start + DIVERGENCE_MARGIN:
            raise TrainingDiverged(f"training diverged at step {step}: the loss rose from {start:.3g} over the "
                                   f"first steps to {recent:.3g} over the last {DIVERGENCE_WINDOW} {advice}")


def check_writable(path: Path, what: str) -> None:
    """Raise OSError (one line, naming the path) unless ``path`` can be created or written."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create the {what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot create the {what} {path}: {existing} is not writable")


class TrainingCancelled(Exception):
    """``should_stop()`` asked the run to end; raised between two documents."""


@dataclass
class Progress:
    documents_done: int    # documents processed so far, over all epochs (trained or skipped)
    documents_total: int   # len(documents) * epochs
    step: int              # optimizer steps so far
    loss: float            # the latest training step's loss (0.0 before the first)
    tokens_per_second: float
    epoch: int             # 0-based epoch of the document just processed
    # "preparing": documents split and tokenized before training (documents_* count those);
    # "training": the optimizer loop.
    stage: str = "training"


@dataclass
class TrainReport:
    documents_total: int
    documents_trained: int
    documents_altered: list[dict] = field(default_factory=list)   # {index, reason}
    documents_skipped: list[dict] = field(default_factory=list)   # {index, reason}
    documents_duplicated: list[dict] = field(default_factory=list)   # {index, same_as}: the same text again

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    artifact_dir: str
    report: TrainReport
    steps: int
    metrics: dict
    losses: list[float] = field(default_factory=list)   # one per optimizer step, in order


def train(documents: list[str], *, out_dir: str, config: TrainConfig,
          base_model: str | None = None, parent: str | None = None,
          progress: Callable[[Progress], None] | None = None,
          checkpoint_dir: str | None = None,
          should_stop: Callable[[], bool] | None = None,
          device: str | None = None,
          epoch_selector: EpochSelector | None = None,
          on_checkpoint: Callable[[Path], None] | None = None) -> TrainResult:
    """Train on ``documents`` starting from ``parent`` (or ``base_model``) and write an artifact.

    ``parent`` is a previous version's artifact directory; ``base_model`` defaults to the one
    the parent was trained on, or to the product's default model. With ``checkpoint_dir``, a
    resumable checkpoint is written every ``config.checkpoint_every`` documents, and a run that
    finds one there continues from it and reaches the same result as an uninterrupted run;
    checkpoints are removed once the artifact is written. ``on_checkpoint(directory)`` is called
    with each checkpoint once it is complete on disk (the service copies it to shared storage, so
    another machine can resume the run).
    With ``epoch_selector`` (``disc_engine.budget``) the run is retention-budgeted: the parent
    and every epoch are checked, training stops early when the selector says so, and the
    artifact holds the best epoch within the budget (the parent's weights if none fits);
    ``metrics["epoch_selection"]`` records the trajectory and the choice.
    Raises ``EmptyDocumentError`` before training when a document is empty and
    ``TrainingCancelled`` when ``should_stop()`` turns true.
    """
    import torch

    from disc_engine import artifacts
    from disc_engine.models import DEFAULT_MODEL, load_tokenizer, model_checksum

    if not documents:
        raise ValueError("no documents to train on")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"artifact directory {out} already exists and is not empty")
    # Found now, not after training: a folder the artifact or the checkpoints cannot be written to.
    check_writable(out, "artifact directory")
    if checkpoint_dir is not None:
        check_writable(Path(checkpoint_dir), "checkpoint directory")
    for index, text in enumerate(documents):
        if not isinstance(text, str) or not text.strip():
            raise EmptyDocumentError(f"document {index} is empty or whitespace only")

    # --- parent and base ---
    parent_meta = artifacts.read_meta(parent) if parent is not None else None
    if parent_meta is not None:
        parent_kind = artifacts.artifact_kind(parent)
        if (parent_kind == "full") != config.full_finetune:
            wanted = "full fine-tuning" if config.full_finetune else "LoRA"
            raise artifacts.ArtifactError(
                f"parent {parent} is a {parent_kind} artifact but this run uses {wanted}; "
                "a lineage keeps one parameterization")
        base_model = base_model or parent_meta["base_model"]
        if parent_kind == "lora":
            # A chained version continues its parent's adapter: its shape is the parent's,
            # whatever was asked, and the record says what was applied.
            config = TrainConfig.model_validate({**config.to_dict(), **_adapter_shape(parent_meta)})
    base_model = base_model or DEFAULT_MODEL
    base_checksum = model_checksum(base_model)
    if parent_meta is not None and parent_meta.get("base_model_checksum") not in (None, base_checksum):
        raise artifacts.ArtifactError(
            f"parent {parent} was trained on a different base than {base_model} (checksums differ)")

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_cuda = torch.device(device).type == "cuda"
    torch.manual_seed(config.seed)

    tokenizer = load_tokenizer(base_model)
    if epoch_selector is None and config.retention_budget_kl is not None:
        from disc_engine.budget import EpochSelector, RetentionBudget
        from disc_engine.evaluation.epoch_check import EpochCheck

        format_drop = config.retention_budget_format_drop
        epoch_selector = EpochSelector(
            RetentionBudget(max_kl_vs_parent=config.retention_budget_kl, max_format_drop=format_drop),
            EpochCheck(tokenizer, documents, seed=config.seed, check_format=format_drop is not None))
    model, teacher = _build_models(config, base_model, parent, device, on_cuda)
    max_context = config.max_context or getattr(model.config, "max_position_embeddings", None)

    # --- documents ---
    prepared = []
    altered: dict[int, str] = {}
    duplicated: list[dict] = []
    first_seen: dict[str, int] = {}
    # A sentence over half the context is cut into chunks, so every split keeps room for a prefix.
    max_sentence_tokens = max_context // 2 if max_context is not None else None
    for index, text in enumerate(documents):
        try:
            doc = prepare_document(text, tokenizer, max_sentence_tokens=max_sentence_tokens)
        except EmptyDocumentError as exc:
            raise EmptyDocumentError(f"document {index}: {exc}") from exc
        reasons = list(doc.alterations)
        if max_context is not None and doc.token_count > max_context:
            reasons.append(config.objective.context_alteration(doc.token_count, max_context))
        if reasons:
            altered[index] = "; ".join(reasons)
        # Repeats are trained as often as they appear (a caller may mean the weight) and reported.
        same_as = first_seen.setdefault(" ".join(text.split()), index)
        if same_as != index:
            duplicated.append({"index": index, "same_as": same_as})
        prepared.append(doc)
        if progress is not None:
            progress(Progress(documents_done=index + 1, documents_total=len(documents), step=0, loss=0.0,
                              tokens_per_second=0.0, epoch=0, stage="preparing"))

    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=config.learning_rate,
                                  betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    split_rng = random.Random(config.seed)
    run = RunContext(config=config, model=model, teacher=teacher, split_rng=split_rng,
                     max_context=max_context, tokenizer=tokenizer)
    # Built before any step (and again on resume): the replies are the parent's, which never changes.
    replay = ChatReplay(model, teacher, tokenizer, seed=config.seed) if config.replay_weight > 0 else None
    fingerprint = {
        "config": {k: v for k, v in config.to_dict().items() if k not in RESULT_NEUTRAL_FIELDS},
        "data_hash": artifacts.data_hash(documents),
        "base_model_checksum": base_checksum,
        # The parent by content, not path: a job resumed on another machine finds it elsewhere.
        "parent": model_checksum(parent) if parent is not None else None,
        "epoch_budget": epoch_selector.summary()["budget"] if epoch_selector is not None else None,
    }

    # --- state, possibly resumed ---
    state = {"position": 0, "steps": 0, "losses": [], "trained": [], "skipped": {},
             "train_seconds": 0.0, "tokens": 0}
    if checkpoint_dir is not None:
        saved = _latest_checkpoint(checkpoint_dir)
        if saved is not None:
            state = _restore_checkpoint(saved, fingerprint, trainable, optimizer, split_rng)
            if epoch_selector is not None and state.get("selection") is not None:
                epoch_selector.load_state_dict(state["selection"])

    # --- loop: one optimizer step per document ---
    count = len(documents)
    total = count * config.epochs
    trained, skipped = set(state["trained"]), dict(state["skipped"])
    teacher_logits = _teacher_logit_cache(config, prepared, state["position"], total, split_rng)
    model.train()
    autocast = _autocast(config.precision, device)
    order_epoch, order = None, []
    epochs_done = state["position"] // count
    if epoch_selector is not None and state["position"] == 0:
        _observe_epoch(epoch_selector, 0, model, trainable)   # the parent itself
        state["selection"] = epoch_selector.state_dict()
    position = state["position"]
    while position < total:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training cancelled after {position} of {total} documents")
        epoch = position // count
        if epoch != order_epoch:
            order_epoch, order = epoch, _epoch_order(config.seed, epoch, count)
        # One step's documents: ``documents_per_step`` of them, never across an epoch's end.
        group = [order[p % count] for p in range(position, min(position + config.documents_per_step,
                                                               (epoch + 1) * count))]
        started = time.perf_counter()
        with autocast():
            loss, reasons = _step_loss(config, run, prepared, group, teacher_logits)
            replay_loss = replay.loss(model, teacher, state["steps"], max_context) \
                if loss is not None and replay is not None else None
            if replay_loss is not None:
                state.setdefault("replay_losses", []).append(replay_loss.item())
                loss = loss + config.replay_weight * replay_loss
        for index, reason in zip(group, reasons):
            if reason is not None:
                skipped.setdefault(index, reason)
        if loss is not None:
            if not torch.isfinite(loss):
                which = f"document {group[0]}" if len(group) == 1 else f"documents {group}"
                raise TrainingDiverged(
                    f"the loss of {which} is {loss.item()} at step {state['steps'] + 1}; "
                    f"training diverged (learning rate {config.learning_rate})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["losses"].append(loss.item())
            check_divergence(state["losses"], config.learning_rate)
            state["steps"] += 1
            for index, reason in zip(group, reasons):
                if reason is None:
                    state["tokens"] += prepared[index].token_count
                    trained.add(index)
        state["train_seconds"] += time.perf_counter() - started
        previous, position = position, position + len(group)
        state["position"] = position
        stop_early = False
        if position % count == 0:
            epochs_done = position // count
            if epoch_selector is not None:
                stop_early = _observe_epoch(epoch_selector, epochs_done, model, trainable).stop
                state["selection"] = epoch_selector.state_dict()
        if checkpoint_dir is not None and position // config.checkpoint_every > previous // config.checkpoint_every \
                and position < total and not stop_early:
            state["trained"], state["skipped"] = sorted(trained), skipped
            saved_to = _save_checkpoint(checkpoint_dir, state, fingerprint, trainable, optimizer, split_rng)
            if on_checkpoint is not None:
                on_checkpoint(saved_to)
        if progress is not None:
            progress(Progress(
                documents_done=position, documents_total=total, step=state["steps"],
                loss=state["losses"][-1] if state["losses"] else 0.0,
                tokens_per_second=_rate(state), epoch=epoch))
        if stop_early:
            break

    if not trained:
        reasons = "; ".join(f"document {i}: {r}" for i, r in sorted(skipped.items())[:3])
        raise NothingTrained(f"none of the {count} document(s) could be trained ({reasons}); no version is made")

    # --- artifact ---
    model.eval()
    if epoch_selector is not None and epoch_selector.best_epoch != epochs_done:
        epoch_selector.restore_best(trainable)
    report = TrainReport(
        documents_total=count,
        documents_trained=len(trained),
        documents_altered=[{"index": i, "reason": r} for i, r in sorted(altered.items())],
        documents_skipped=[{"index": i, "reason": r} for i, r in sorted(skipped.items())],
        documents_duplicated=duplicated,
    )
    losses = state["losses"]
    metrics = {
        "mean_loss": sum(losses) / len(losses) if losses else None,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "epoch_mean_losses": _epoch_means(losses, max(epochs_done, 1)),
        "epochs_trained": epochs_done,
        "train_seconds": state["train_seconds"],
        "tokens": state["tokens"],
        "tokens_per_second": _rate(state),
        "learning_rate": config.learning_rate,
        "device": str(device),
    }
    if replay is not None:
        replayed = state.get("replay_losses", [])
        metrics["replay_kl_first"] = replayed[0] if replayed else None
        metrics["replay_kl_final"] = replayed[-1] if replayed else None
    if epoch_selector is not None:
        metrics["epoch_selection"] = epoch_selector.summary()
    artifact_dir = artifacts.save_artifact(
        model, out_dir, base_model=base_model, base_model_checksum=base_checksum,
        parent=os.path.abspath(parent) if parent is not None else None,
        method=config.method, config=config.to_dict(), data_hash=fingerprint["data_hash"],
        steps=state["steps"], metrics=metrics, report=report.to_dict(), tokenizer=tokenizer)
    if checkpoint_dir is not None:
        # The artifact is the run's result; checkpoints (for full fine-tuning, several times
        # the model's size) would only be stale copies of it.
        _remove_checkpoints(checkpoint_dir)
    return TrainResult(artifact_dir=artifact_dir, report=report, steps=state["steps"],
                       metrics=metrics, losses=list(losses))


# --- setup ---------------------------------------------------------------------------------------

def _adapter_shape(parent_meta: dict) -> dict:
    """The LoRA options a chained version inherits, from its parent's recorded adapter config."""
    lora = parent_meta.get("lora") or {}
    shape = {"lora_r": lora.get("r"), "lora_alpha": lora.get("lora_alpha"), "lora_dropout": lora.get("lora_dropout")}
    return {name: value for name, value in shape.items() if value is not None}


def _build_models(config: TrainConfig, base_model: str, parent: str | None, device: str,
                  on_cuda: bool):
    """The trainable model and its frozen teacher (``None``: the student with adapters off)."""
    import torch

    from disc_engine import adapters
    from disc_engine.artifacts import load_artifact
    from disc_engine.models import load_model

    if config.full_finetune:
        model = load_artifact(parent, device=device) if parent is not None \
            else load_model(base_model, device=device)
        model.requires_grad_(True)
        if not (config.objective.needs_teacher or config.replay_weight > 0):
            return model, None
        teacher = copy.deepcopy(model)
        if on_cuda and config.precision != "fp32":
            teacher = teacher.to(torch.bfloat16)
        return model, teacher.eval().requires_grad_(False)
    # The base is frozen under LoRA: on CUDA it is kept in bf16, the precision autocast computes
    # in anyway, which halves its memory; the adapter weights stay fp32.
    base = load_model(base_model, device=device,
                      dtype=torch.bfloat16 if on_cuda and config.precision != "fp32" else torch.float32)
    if parent is None:
        model = adapters.new_lora_model(base, r=config.lora_r, alpha=config.lora_alpha,
                                        dropout=config.lora_dropout)
        return model.to(device), None
    model = adapters.chained_lora_model(base, parent).to(device)
    return model, adapters.ParentAdapterTeacher(model)


def _step_loss(config: TrainConfig, run: RunContext, prepared, group: list[int], teacher_logits):
    """The loss of one optimizer step over the documents ``group`` (indices into ``prepared``) and,
    per document, the reason it was skipped (None: trained)."""
    objective = config.objective
    if len(group) == 1:
        index = group[0]
        run.teacher_logits = teacher_logits.document(index) if teacher_logits is not None else None
        loss, reason = objective.document_loss(run, prepared[index])
        return loss, [reason if loss is None else None]
    run.teacher_logits = None
    if objective.group_loss is not None:
        return objective.group_loss(run, [prepared[i] for i in group])
    losses, reasons = [], []
    for index in group:
        loss, reason = objective.document_loss(run, prepared[index])
        reasons.append(reason if loss is None else None)
        if loss is not None:
            losses.append(loss)
    return (sum(losses) / len(losses) if losses else None), reasons


def _autocast(precision: str, device: str):
    """A context factory for one step's computation: bf16 autocast on the device's type, or none."""
    import torch

    kind = torch.device(device).type
    if precision == "fp32" or (precision == "auto" and kind != "cuda"):
        return nullcontext
    return lambda: torch.autocast(kind, dtype=torch.bfloat16)


def _teacher_logit_cache(config: TrainConfig, prepared, start: int, total: int, split_rng):
    """The teacher's logits kept across epochs, for the paper's objective over several epochs."""
    from disc_engine.teacher_cache import TeacherLogitCache, plan_disc_splits

    if (config.method != "disc" or config.epochs < 2 or config.teacher_cache_mb == 0 or start >= total
            or config.documents_per_step > 1):  # a padded step of several documents reads its own teacher batch
        return None
    plan = plan_disc_splits(prepared, lambda epoch: _epoch_order(config.seed, epoch, len(prepared)), start, total,
                            config.num_splits, split_rng.getstate())
    return TeacherLogitCache(plan, max_bytes=config.teacher_cache_mb * 1024 * 1024)


def _observe_epoch(selector, epoch: int, model, trainable):
    """The selector's verdict on the model as it stands after ``epoch`` epochs (0: the parent)."""
    model.eval()
    try:
        return selector.observe(epoch, model, trainable)
    finally:
        model.train()


def _epoch_order(seed: int, epoch: int, count: int) -> list[int]:
    # Derived from (seed, epoch) alone, so a resumed run needs no saved order.
    order = list(range(count))
    random.Random(f"disc-order:{seed}:{epoch}").shuffle(order)
    return order


def _rate(state: dict) -> float:
    return state["tokens"] / state["train_seconds"] if state["train_seconds"] > 0 else 0.0


def _epoch_means(losses: list[float], epochs: int) -> list[float]:
    # Every epoch trains the same documents (skipping depends on the document alone).
    per_epoch = len(losses) // epochs
    if per_epoch == 0:
        return []
    return [sum(losses[e * per_epoch:(e + 1) * per_epoch]) / per_epoch for e in range(epochs)]


# --- checkpoints -------------------------------------------------------------------------------

def _latest_checkpoint(checkpoint_dir: str) -> Path | None:
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir()
                   if p.name.startswith(_CHECKPOINT_PREFIX) and (p / "state.pt").is_file())
    return found[-1] / "state.pt" if found else None


def _remove_checkpoints(checkpoint_dir: str) -> None:
    if not Path(checkpoint_dir).is_dir():  # a short run may never have written one
        return
    for path in Path(checkpoint_dir).iterdir():
        if path.name.startswith((_CHECKPOINT_PREFIX, f".{_CHECKPOINT_PREFIX}")):
            shutil.rmtree(path, ignore_errors=True)


def _save_checkpoint(checkpoint_dir: str, state: dict, fingerprint: dict, trainable, optimizer,
                     split_rng: random.Random) -> Path:
    """Everything a resumed run needs, written to a temporary directory and renamed into place;
    returns that directory."""
    import torch

    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "state": {**state, "skipped": [[i, r] for i, r in sorted(state["skipped"].items())]},
        "weights": {name: p.detach().to("cpu", copy=True) for name, p in trainable},
        "optimizer": optimizer.state_dict(),
        "split_rng": split_rng.getstate(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    target = root / f"{_CHECKPOINT_PREFIX}{state['position']:09d}"
    with atomic_directory(target, replace="always") as staging:
        torch.save(payload, staging / "state.pt")
    for older in root.iterdir():
        if older.name.startswith(_CHECKPOINT_PREFIX) and older.name < target.name:
            shutil.rmtree(older, ignore_errors=True)
    return target


def _with_new_defaults(fingerprint: dict) -> dict:
    """A checkpoint's fingerprint with options added since it was written at their defaults, so
    a job checkpointed by an older release resumes after an upgrade."""
    saved = dict(fingerprint)
    if isinstance(saved.get("config"), dict):
        defaults = TrainConfig.model_validate({"method": saved["config"].get("method", "disc")}).to_dict()
        saved["config"] = {**{k: v for k, v in defaults.items() if k not in RESULT_NEUTRAL_FIELDS},
                           **saved["config"]}
    if isinstance(saved.get("epoch_budget"), dict):
        # Budget rules added since (tolerance of an epoch just over the budget) at their defaults.
        from disc_engine.budget import RetentionBudget

        rules = {"over_patience": RetentionBudget.over_patience, "stop_factor": RetentionBudget.stop_factor,
                 "max_format_drop": RetentionBudget.max_format_drop}
        saved["epoch_budget"] = {**rules, **saved["epoch_budget"]}
    return saved


def _restore_checkpoint(path: Path, fingerprint: dict, trainable, optimizer,
                        split_rng: random.Random) -> dict:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {payload.get('format')}, "
                         f"expected {CHECKPOINT_FORMAT}")
    saved = _with_new_defaults(payload["fingerprint"])
    if saved != fingerprint:
        differing = sorted(k for k in fingerprint if saved.get(k) != fingerprint[k])
        raise ValueError(f"checkpoint {path} belongs to a different run (differs in: "
                         f"{', '.join(differing)}); use an empty checkpoint directory")
    weights = payload["weights"]
    with torch.no_grad():
        for name, param in trainable:
            param.copy_(weights[name].to(param.device))
    optimizer.load_state_dict(payload["optimizer"])
    split_rng.setstate(payload["split_rng"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    state = dict(payload["state"])
    state["skipped"] = {int(i): r for i, r in state["skipped"]}
    return state
