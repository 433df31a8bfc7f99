"""Training objectives: DiSC (``disc_loss``) and the fine-tuning baselines it is compared with.

DiSC, for one document split at sentence ``i``: the teacher reads sentences ``0 … i``
concatenated, the student reads sentence ``i`` alone, and the student is pulled towards the
teacher's next-token distributions on the suffix:

    T² · mean over t = 2..L of KL( softmax(z_teacher / T) ‖ softmax(z_student / T) )

(forward KL over the full vocabulary; the first suffix token is not predicted because the
student has nothing to predict it from). The document loss is the mean over its splits.

``disc_loss`` computes exactly what the per-split loop ``disc_loss_reference`` computes, but:

* the teacher's input for every split is a prefix of the same token sequence, so ONE teacher
  forward over sentences ``0 … max(split)`` serves all splits, and logits are projected only at
  the positions that predict suffix tokens (``logits_to_keep``);
* all suffixes go through the student together, as one right-padded batch with an attention
  mask and positions starting at 0 in every row (under causal attention, right padding leaves
  the real tokens' logits unchanged), again projecting logits only where they are needed;
* the KL is computed in fp32, ``chunk_size`` positions at a time.

Memory: teacher logits are kept for suffix positions only, ``(Σ (L_i - 1)) × vocabulary``,
never ``document length × vocabulary``; the student's logits at those positions are kept by
autograd for the backward pass, as in any distillation loss.

Mixed precision: on CUDA the caller wraps the call in bf16 autocast; logits are upcast to
fp32 before any softmax here.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_SIZE = 64


@dataclass(frozen=True)
class _Split:
    start: int            # offset of the suffix in the concatenated document
    suffix: list[int]     # suffix token ids (capped to max_context)

    @property
    def end(self) -> int:
        return self.start + len(self.suffix)


def disc_loss(student, teacher, sentence_ids: list[list[int]], split_indices: list[int],
              temperature: float = 2.0, *, max_context: int | None = None,
              chunk_size: int = DEFAULT_CHUNK_SIZE, teacher_cache=None) -> torch.Tensor:
    """DiSC loss of one document: the mean over ``split_indices`` of the per-split loss.

    Args:
        student: the causal LM being trained (a plain transformers model or a PEFT model).
        teacher: a frozen causal LM, or ``None``, meaning the student with its adapters switched
            off (``student.disable_adapter()``; the student must then be a PEFT model).
        sentence_ids: the document's sentences as token-id lists (see
            ``disc_engine.splitting.prepare_document``). For split ``i`` the teacher reads
            ``sentence_ids[0 … i]`` concatenated and the student reads ``sentence_ids[i]``. No
            BOS or template is added on either side.
        split_indices: sentence indices to split at (``choose_split_indices``); each suffix must
            have at least 2 tokens. Index 0 is allowed (the teacher then reads the suffix alone).
        temperature: the distillation temperature T; the loss is multiplied by T².
        max_context: the longest input either model may read (e.g. the model's
            ``max_position_embeddings``). A teacher input longer than this loses tokens from the
            left of its prefix; a suffix longer than this is cut to its first ``max_context``
            tokens for both models. ``None``: no limit.
        chunk_size: positions per fp32 KL chunk (bounds the softmax temporaries).
        teacher_cache: this document's ``disc_engine.teacher_cache.DocumentTeacherLogits``, or
            None. Splits found there need no teacher forward; a forward, when one runs, also
            computes the document's upcoming splits and stores them for their epochs.

    Returns:
        A scalar fp32 tensor. Gradients reach only the student's trainable parameters: the
        teacher runs under ``torch.no_grad``.

    One teacher forward serves every split whose input fits within ``max_context`` from the
    document start; a split that does not gets a teacher forward of its own over its window.
    """
    _check_temperature(temperature)
    splits = _make_splits(sentence_ids, split_indices, max_context)
    device = _device_of(student)
    if teacher_cache is None:
        document = [token for sentence in sentence_ids[:max(split_indices) + 1] for token in sentence]
        with torch.no_grad(), parent_view(student, teacher) as frozen:
            teacher_logits = _teacher_suffix_logits(frozen, document, splits, max_context, device)
    else:
        teacher_logits = _cached_teacher_logits(student, teacher, sentence_ids, split_indices, max_context,
                                                device, teacher_cache)

    student_logits = _student_suffix_logits(student, [s.suffix for s in splits], device)

    # Per-position weights turn one sum over all positions into the mean over splits of the
    # per-split mean over that split's L - 1 positions.
    weights = torch.cat([
        torch.full((len(s.suffix) - 1,), 1.0 / ((len(s.suffix) - 1) * len(splits)), device=device)
        for s in splits
    ])
    kl = _weighted_kl(teacher_logits, student_logits, temperature, chunk_size, weights)
    return kl * temperature ** 2


def disc_loss_batch(student, teacher, documents: list[tuple[list[list[int]], list[int]]],
                    temperature: float = 2.0, *, max_context: int | None = None,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """The mean of ``disc_loss`` over several documents, computed as one padded step.

    ``documents`` are ``(sentence_ids, split_indices)`` pairs. The teacher reads every
    document's prefix as one right-padded batch (keeping only the suffix positions' logits) and
    the student reads every document's suffixes as one batch; each document weighs the same.
    Splits that need a window of their own (past ``max_context``) get it, as in ``disc_loss``.
    """
    _check_temperature(temperature)
    if not documents:
        raise ValueError("disc_loss_batch needs at least one document")
    device = _device_of(student)
    planned = [(sentences, _make_splits(sentences, indices, max_context), indices) for sentences, indices in documents]
    with torch.no_grad(), parent_view(student, teacher) as frozen:
        pieces: list[torch.Tensor | None] = [None] * len(planned)
        rows, row_spans, row_of = [], [], []
        for number, (sentences, splits, indices) in enumerate(planned):
            if max_context is not None and any(s.end > max_context for s in splits):
                document = [t for sentence in sentences[:max(indices) + 1] for t in sentence]
                pieces[number] = _teacher_suffix_logits(frozen, document, splits, max_context, device)
                continue
            rows.append([t for sentence in sentences[:max(indices) + 1] for t in sentence])
            row_spans.append([(s.start, s.end - 1) for s in splits])
            row_of.append(number)
        if rows:
            logits = _batched_logits_at(frozen, rows, row_spans)
            offset = 0
            for number, spans in zip(row_of, row_spans):
                count = sum(b - a for a, b in spans)
                pieces[number] = logits[offset:offset + count].to(device)
                offset += count
    teacher_logits = torch.cat(pieces)
    suffixes = [s.suffix for _, splits, _ in planned for s in splits]
    student_logits = _student_suffix_logits(student, suffixes, device)
    weights = torch.cat([
        torch.full((len(s.suffix) - 1,), 1.0 / ((len(s.suffix) - 1) * len(splits) * len(planned)), device=device)
        for _, splits, _ in planned for s in splits
    ])
    return _weighted_kl(teacher_logits, student_logits, temperature, chunk_size, weights) * temperature ** 2


def disc_loss_reference(student, teacher, sentence_ids: list[list[int]], split_indices: list[int],
                        temperature: float = 2.0, *, max_context: int | None = None) -> torch.Tensor:
    """The same loss as ``disc_loss``, computed the plain way: per split, one teacher forward over
    prefix + suffix and one student forward over the suffix, full logits, ``F.kl_div``.

    Slow; it exists as the definition ``disc_loss`` is tested and benchmarked against.
    """
    _check_temperature(temperature)
    splits = _make_splits(sentence_ids, split_indices, max_context)
    device = _device_of(student)
    document = [token for sentence in sentence_ids for token in sentence]
    total = torch.zeros((), device=device)
    for split in splits:
        teacher_input = document[:split.start] + split.suffix
        if max_context is not None:
            teacher_input = teacher_input[-max_context:]
        total = total + _split_kl_reference(student, teacher, teacher_input, split.suffix, temperature)
    return total / len(splits)


def context_distillation_loss(student, teacher, contexts: list[list[int]], suffixes: list[list[int]],
                              temperature: float = 2.0, *, max_context: int | None = None,
                              chunk_size: int = DEFAULT_CHUNK_SIZE,
                              student_prefixes: list[list[int]] | None = None) -> torch.Tensor:
    """Split-context distillation with an explicit teacher context for every suffix.

    For each ``j`` the teacher reads ``contexts[j] + suffixes[j]`` and the student reads
    ``suffixes[j]`` alone; the loss is T² · the mean over ``j`` of the mean over positions
    predicting suffix tokens 2..L of KL(teacher ‖ student) — ``disc_loss``'s formula, for
    contexts that are not prefixes of one sequence (so each needs a teacher row of its own; the
    rows go through the teacher as one right-padded batch). A context longer than
    ``max_context`` minus the suffix loses tokens from its left; a suffix longer than
    ``max_context`` is cut to its first ``max_context`` tokens for both models.

    With ``student_prefixes`` the student reads ``student_prefixes[j] + suffixes[j]`` (a chat
    turn before its reply, say), so it has something to predict the first suffix token from:
    then every suffix token 1..L is distilled, and a suffix is cut so that the student's row fits
    ``max_context``.
    """
    _check_temperature(temperature)
    if len(contexts) != len(suffixes) or not suffixes:
        raise ValueError(f"need one context per suffix and at least one suffix; got {len(contexts)} "
                         f"contexts for {len(suffixes)} suffixes")
    if student_prefixes is not None and len(student_prefixes) != len(suffixes):
        raise ValueError(f"need one student prefix per suffix; got {len(student_prefixes)} for "
                         f"{len(suffixes)} suffixes")
    if max_context is not None and max_context < 2:
        raise ValueError(f"max_context must be at least 2 tokens, got {max_context}")
    prefixes = student_prefixes or [[] for _ in suffixes]
    # With a student prefix the first suffix token is predicted too (from the prefix's last token).
    predict_first = student_prefixes is not None
    rows, student_rows, spans = [], [], []
    for context, prefix, suffix in zip(contexts, prefixes, suffixes):
        if len(suffix) < 2:
            raise ValueError(f"a suffix has {len(suffix)} token(s); at least 2 are needed")
        if predict_first and not prefix:
            raise ValueError("a student prefix is empty: the first suffix token has nothing to be predicted from")
        if max_context is not None:
            if max_context - len(prefix) < 2:
                raise ValueError(f"a student prefix of {len(prefix)} tokens leaves no room in the "
                                 f"{max_context}-token context")
            suffix = list(suffix)[:max_context - len(prefix)]
        suffix = list(suffix)
        room = len(context) if max_context is None else max(0, max_context - len(suffix))
        rows.append((list(context)[len(context) - room:] if room else [], suffix))
        if predict_first and not rows[-1][0]:
            raise ValueError("a teacher context is empty: the first suffix token has nothing to be predicted from")
        student_rows.append(list(prefix) + suffix)
        # Positions predicting the distilled tokens, in each row: (first, count).
        spans.append(len(suffix) if predict_first else len(suffix) - 1)
    device = _device_of(student)
    shift = 1 if predict_first else 0
    with torch.no_grad(), parent_view(student, teacher) as frozen:
        # Row j's logit at len(context) + t predicts suffix token t + 2 (1-based), t = 0 … L - 2;
        # the one at len(context) - 1 predicts token 1.
        keep_from = [len(context) - shift for context, _ in rows]
        teacher_logits = _batched_logits(frozen, [context + suffix for context, suffix in rows],
                                         [(a, a + n) for a, n in zip(keep_from, spans)])
    student_logits = _batched_logits(
        student, student_rows, [(len(p) - shift, len(p) - shift + n) for p, n in zip(prefixes, spans)]).to(device)
    weights = torch.cat([torch.full((n,), 1.0 / (n * len(spans)), device=device) for n in spans])
    kl = _weighted_kl(teacher_logits.to(device), student_logits, temperature, chunk_size, weights)
    return kl * temperature ** 2


def context_distillation_loss_reference(student, teacher, contexts: list[list[int]],
                                        suffixes: list[list[int]], temperature: float = 2.0, *,
                                        max_context: int | None = None,
                                        student_prefixes: list[list[int]] | None = None) -> torch.Tensor:
    """``context_distillation_loss`` the plain way, one split at a time (its definition in tests)."""
    _check_temperature(temperature)
    device = _device_of(student)
    total = torch.zeros((), device=device)
    for j, (context, suffix) in enumerate(zip(contexts, suffixes)):
        prefix = [] if student_prefixes is None else list(student_prefixes[j])
        suffix = list(suffix) if max_context is None else list(suffix)[:max_context - len(prefix)]
        teacher_input = list(context) + suffix
        if max_context is not None:
            teacher_input = teacher_input[-max_context:]
        if student_prefixes is None:
            total = total + _split_kl_reference(student, teacher, teacher_input, suffix, temperature)
        else:
            total = total + _prompted_kl_reference(student, teacher, teacher_input, prefix, suffix, temperature)
    return total / len(suffixes)


def _prompted_kl_reference(student, teacher, teacher_input: list[int], prefix: list[int],
                           suffix: list[int], temperature: float) -> torch.Tensor:
    """T² · mean KL over suffix tokens 1..L, the student reading ``prefix + suffix``."""
    device = _device_of(student)
    length = len(suffix)
    with torch.no_grad(), parent_view(student, teacher) as frozen:
        ids = torch.tensor([teacher_input], device=_device_of(frozen))
        teacher_logits = frozen(input_ids=ids, use_cache=False).logits[0, -length - 1:-1]
    ids = torch.tensor([prefix + suffix], device=device)
    student_logits = student(input_ids=ids, use_cache=False).logits[0, -length - 1:-1]
    per_split = F.kl_div(
        F.log_softmax(student_logits.float() / temperature, dim=-1),
        F.softmax(teacher_logits.to(device).float() / temperature, dim=-1),
        reduction="batchmean",
    )
    return per_split * temperature ** 2


def _split_kl_reference(student, teacher, teacher_input: list[int], suffix: list[int],
                        temperature: float) -> torch.Tensor:
    """T² · mean KL over suffix tokens 2..L for one split, full logits, ``F.kl_div``."""
    device = _device_of(student)
    length = len(suffix)
    with torch.no_grad(), parent_view(student, teacher) as frozen:
        ids = torch.tensor([teacher_input], device=_device_of(frozen))
        teacher_logits = frozen(input_ids=ids, use_cache=False).logits[0, -length:-1]
    ids = torch.tensor([suffix], device=device)
    student_logits = student(input_ids=ids, use_cache=False).logits[0, :-1]
    per_split = F.kl_div(
        F.log_softmax(student_logits.float() / temperature, dim=-1),
        F.softmax(teacher_logits.to(device).float() / temperature, dim=-1),
        reduction="batchmean",
    )
    return per_split * temperature ** 2


def sft_loss(model, token_ids: list[int]) -> torch.Tensor:
    """Next-token cross-entropy on one document (the paper's FT baseline), mean over tokens 2..L."""
    ids = _document_tensor(model, token_ids)
    logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
    return F.cross_entropy(logits.float(), ids[0, 1:])


def sft_kl_loss(student, reference, token_ids: list[int], beta: float = 0.1,
                temperature: float = 1.0) -> torch.Tensor:
    """FT+KL baseline: cross-entropy + ``beta`` · T² · mean over positions of
    KL(reference ‖ student) at temperature T, both models reading the whole document.

    ``reference`` is a frozen model, or ``None`` for the student with its adapters switched off.
    """
    _check_temperature(temperature)
    ids = _document_tensor(student, token_ids)
    with torch.no_grad(), parent_view(student, reference) as frozen:
        reference_logits = frozen(input_ids=ids.to(_device_of(frozen)), use_cache=False).logits[0, :-1]
    student_logits = student(input_ids=ids, use_cache=False).logits[0, :-1]
    ce = F.cross_entropy(student_logits.float(), ids[0, 1:])
    positions = student_logits.shape[0]
    weights = torch.full((positions,), 1.0 / positions, device=ids.device)
    kl = _weighted_kl(reference_logits.to(ids.device), student_logits, temperature,
                          DEFAULT_CHUNK_SIZE, weights)
    return ce + beta * kl * temperature ** 2


# --- internals ---------------------------------------------------------------------------------

def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _document_tensor(model, token_ids: list[int]) -> torch.Tensor:
    if len(token_ids) < 2:
        raise ValueError(f"a document needs at least 2 tokens to predict one, got {len(token_ids)}")
    return torch.tensor([list(token_ids)], device=_device_of(model))


@contextmanager
def parent_view(student, teacher):
    """The frozen parent to read with: ``teacher``, or the PEFT student with its adapters off.

    Every loss that compares the student with its parent reads the parent through this, and so
    does chat replay (``disc_engine.replay``) when it generates the parent's replies."""
    if teacher is not None:
        yield teacher
        return
    if not hasattr(student, "disable_adapter"):
        raise ValueError(
            "teacher=None means 'the student with its adapters disabled', which needs a PEFT "
            f"student; got {type(student).__name__}. Pass a frozen teacher model instead.")
    with student.disable_adapter():
        yield student


def _make_splits(sentence_ids: list[list[int]], split_indices: list[int],
                 max_context: int | None) -> list[_Split]:
    if max_context is not None and max_context < 2:
        raise ValueError(f"max_context must be at least 2 tokens, got {max_context}")
    if not split_indices:
        raise ValueError("split_indices is empty: the document has no valid split (skip it)")
    offsets = [0]
    for sentence in sentence_ids:
        offsets.append(offsets[-1] + len(sentence))
    splits = []
    for index in split_indices:
        if not 0 <= index < len(sentence_ids):
            raise ValueError(f"split index {index} is outside the document's {len(sentence_ids)} sentences")
        suffix = list(sentence_ids[index])
        if len(suffix) < 2:
            raise ValueError(f"the suffix at split index {index} has {len(suffix)} token(s); at least 2 are needed")
        if max_context is not None:
            suffix = suffix[:max_context]
        splits.append(_Split(start=offsets[index], suffix=suffix))
    return splits


def _cached_teacher_logits(student, teacher, sentence_ids, split_indices, max_context, device, cache):
    """``_teacher_suffix_logits`` of the splits, from the cache where it holds them all; else one
    forward that also computes the document's upcoming splits, which are stored for later."""
    found = [cache.get(index) for index in split_indices]
    if all(piece is not None for piece in found):
        cache.used(split_indices)
        return torch.cat(found).to(device)
    wanted = sorted(set(split_indices) | set(cache.upcoming()))
    wanted_splits = _make_splits(sentence_ids, wanted, max_context)
    document = [token for sentence in sentence_ids[:max(wanted) + 1] for token in sentence]
    with torch.no_grad(), parent_view(student, teacher) as frozen:
        logits = _teacher_suffix_logits(frozen, document, wanted_splits, max_context, device)
    pieces, offset = {}, 0
    for index, split in zip(wanted, wanted_splits):
        count = len(split.suffix) - 1
        pieces[index] = logits[offset:offset + count]
        offset += count
        cache.put(index, pieces[index], in_use_now=index in split_indices)
    cache.used(split_indices)
    return torch.cat([pieces[index] for index in split_indices])


def _teacher_suffix_logits(teacher, document: list[int], splits: list[_Split],
                           max_context: int | None, device: torch.device) -> torch.Tensor:
    """Teacher logits at every position that predicts suffix tokens 2..L, split after split.

    The logit at document position ``start + t`` predicts suffix token ``t + 2`` (1-based), so
    split ``i`` needs positions ``start … start + L - 2``.
    """
    shared = [s for s in splits if max_context is None or s.end <= max_context]
    own_window = [s for s in splits if max_context is not None and s.end > max_context]
    pieces: dict[int, torch.Tensor] = {}
    teacher_device = _device_of(teacher)

    if shared:
        length = max(s.end for s in shared)
        positions = torch.cat([torch.arange(s.start, s.end - 1) for s in shared])
        ids = torch.tensor([document[:length]], device=teacher_device)
        logits = _logits_at_positions(teacher, ids, positions.to(teacher_device))
        offset = 0
        for s in shared:
            count = len(s.suffix) - 1
            pieces[id(s)] = logits[offset:offset + count]
            offset += count
    for s in own_window:
        window_start = s.end - max_context
        window = document[window_start:s.start] + s.suffix
        ids = torch.tensor([window], device=teacher_device)
        first = s.start - window_start
        positions = torch.arange(first, first + len(s.suffix) - 1, device=teacher_device)
        pieces[id(s)] = _logits_at_positions(teacher, ids, positions)
    return torch.cat([pieces[id(s)] for s in splits]).to(device)


def _logits_at_positions(model, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Logits of a one-row input at ``positions`` only, shape (len(positions), vocabulary)."""
    if _accepts_logits_to_keep(model):
        return model(input_ids=ids, use_cache=False, logits_to_keep=positions).logits[0]
    return model(input_ids=ids, use_cache=False).logits[0, positions]


def _batched_logits(model, sequences: list[list[int]], spans: list[tuple[int, int]]) -> torch.Tensor:
    """Logits of right-padded rows at positions ``[a, b)`` of each row, row after row."""
    return _batched_logits_at(model, sequences, [[span] for span in spans])


def _batched_logits_at(model, sequences: list[list[int]], row_spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Logits of right-padded rows at the positions of each row's spans (in position order), row
    after row."""
    lengths = torch.tensor([len(s) for s in sequences])
    width = int(lengths.max())
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence)
    columns = torch.arange(width).unsqueeze(0)
    attention_mask = (columns < lengths.unsqueeze(1)).long()
    keep = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, spans in enumerate(row_spans):
        for a, b in spans:
            keep[row, a:b] = True
    model_device = _device_of(model)
    inputs = dict(input_ids=ids.to(model_device), attention_mask=attention_mask.to(model_device),
                  position_ids=columns.expand(len(sequences), width).to(model_device), use_cache=False)
    keep = keep.to(model_device)
    if _accepts_logits_to_keep(model):
        # A boolean (batch, length) mask keeps exactly the needed positions, flattened row by row.
        logits = model(**inputs, logits_to_keep=keep).logits
        if logits.dim() != 2 or logits.shape[0] != int(keep.sum()):
            raise RuntimeError(
                f"{type(model).__name__} does not support a boolean logits_to_keep mask "
                f"(got logits of shape {tuple(logits.shape)}); transformers >= 5 is required")
        return logits
    return model(**inputs).logits[keep]


def _student_suffix_logits(student, suffixes: list[list[int]], device: torch.device) -> torch.Tensor:
    """Student logits at positions 0 … L-2 of every suffix, suffix after suffix."""
    return _batched_logits(student, suffixes, [(0, len(s) - 1) for s in suffixes]).to(device)


def _accepts_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def per_position_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0,
                    *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """KL(softmax(teacher_p / T) ‖ softmax(student_p / T)) for every position p, in fp32.

    Both inputs are ``[positions, vocabulary]`` logits (any float dtype); the result is a
    ``[positions]`` fp32 tensor, computed ``chunk_size`` positions at a time so that only one
    chunk's fp32 log-probabilities exist at once. Gradients flow to ``student_logits``.
    """
    _check_temperature(temperature)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if teacher_logits.shape != student_logits.shape or teacher_logits.dim() != 2:
        raise ValueError(f"expected two [positions, vocabulary] tensors of one shape; got "
                         f"{tuple(teacher_logits.shape)} and {tuple(student_logits.shape)}")
    pieces = []
    for start in range(0, student_logits.shape[0], chunk_size):
        stop = start + chunk_size
        teacher_log_probs = F.log_softmax(teacher_logits[start:stop].float() / temperature, dim=-1)
        student_log_probs = F.log_softmax(student_logits[start:stop].float() / temperature, dim=-1)
        pieces.append(F.kl_div(student_log_probs, teacher_log_probs.to(student_log_probs.device),
                               log_target=True, reduction="none").sum(-1))
    if not pieces:
        return torch.zeros(0, device=student_logits.device)
    return torch.cat(pieces)


def _weighted_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float,
                 chunk_size: int, weights: torch.Tensor) -> torch.Tensor:
    """Σ_p weights[p] · KL_p, without keeping every position's fp32 log-probabilities at once."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    total = torch.zeros((), device=student_logits.device)
    for start in range(0, student_logits.shape[0], chunk_size):
        stop = start + chunk_size
        kl = per_position_kl(teacher_logits[start:stop], student_logits[start:stop], temperature,
                             chunk_size=chunk_size)
        total = total + (kl * weights[start:stop]).sum()
    return total
