"""Chat replay: keep the parent's chat behaviour while an update trains on plain documents.

An update's objectives read news prose; nothing in them touches the chat format, which the
student keeps only as far as the documents' gradient leaves it alone. With ``replay_weight`` > 0
every optimizer step also distils the parent's own greedy replies to a few general chat prompts
(``data/replay_prompts.json``, kept apart from every prompt the evaluation and the benchmarks
score): the loss gains ``replay_weight`` × the mean per-token KL(parent ‖ student) over those
replies, the parent reading exactly what the student reads. The replies are generated once, by
the parent, when training starts (or resumes: the parent does not change), and the prompts of
step ``s`` are a fixed function of the seed and ``s``, so a resumed run replays the same ones.
"""

from __future__ import annotations

import json
import random
from importlib import resources

PROMPTS_PER_STEP = 2
MAX_REPLY_TOKENS = 48
# The replay KL is the paper's per-token KL at temperature 1: the chat distribution as served.
REPLAY_TEMPERATURE = 1.0


def load_replay_prompts() -> list[str]:
    return json.loads(resources.files("disc_engine.data").joinpath("replay_prompts.json").read_text())


class ChatReplay:
    """The parent's replies to the replay prompts, and the per-step replay loss."""

    def __init__(self, model, teacher, tokenizer, *, seed: int, prompts: list[str] | None = None,
                 prompts_per_step: int = PROMPTS_PER_STEP, max_reply_tokens: int = MAX_REPLY_TOKENS):
        import torch

        from disc_engine.evaluation._common import chat_prompt_ids
        from disc_engine.evaluation.retention import reference_responses
        from disc_engine.loss import parent_view

        prompts = load_replay_prompts() if prompts is None else list(prompts)
        was_training = model.training
        model.eval()
        try:
            # The same greedy replies the retention measure takes from a reference model.
            with torch.inference_mode(), parent_view(model, teacher) as parent:
                replies = reference_responses(parent, tokenizer, prompts=prompts, max_new_tokens=max_reply_tokens)
        finally:
            model.train(was_training)
        prompt_ids = [chat_prompt_ids(tokenizer, prompt) for prompt in prompts]
        # A reply of fewer than 2 tokens (an immediate end of turn) has almost nothing to keep.
        self.rows = [(prompt, reply) for prompt, reply in zip(prompt_ids, replies) if len(reply) >= 2]
        if not self.rows:
            raise ValueError("the parent gave no replay reply of at least 2 tokens")
        self.order = list(range(len(self.rows)))
        random.Random(seed).shuffle(self.order)
        self.prompts_per_step = min(prompts_per_step, len(self.rows))

    def rows_for_step(self, step: int) -> list[tuple[list[int], list[int]]]:
        """The (prompt, reply) rows replayed at optimizer step ``step`` (0-based): consecutive
        slices of a seeded order of the prompts, wrapping around."""
        start = step * self.prompts_per_step
        return [self.rows[self.order[(start + i) % len(self.rows)]] for i in range(self.prompts_per_step)]

    def loss(self, model, teacher, step: int, max_context: int | None = None):
        """Mean per-token KL(parent ‖ student) over this step's replies (0 for the parent itself);
        None when no reply fits a context of ``max_context`` tokens after its prompt."""
        from disc_engine.loss import context_distillation_loss

        rows = self.rows_for_step(step)
        if max_context is not None:
            # A reply is cut to what fits; a prompt that leaves fewer than 2 tokens is not replayed.
            rows = [(prompt, reply) for prompt, reply in rows if max_context - len(prompt) >= 2]
        if not rows:
            return None
        prompts = [prompt for prompt, _ in rows]
        return context_distillation_loss(model, teacher, prompts, [reply for _, reply in rows], REPLAY_TEMPERATURE,
                                         max_context=max_context, student_prefixes=prompts)
