"""Knowledge vs retention, epoch by epoch, for every method at a few learning rates.

One training run per (method, learning rate); after every epoch (and for the untouched model)
the run is measured without stopping it, through the trainer's epoch hook:

* knowledge: chat-format multiple-choice probe accuracy and the mean log-probability margin of
  the right option over the best wrong one, each with a 95% bootstrap interval over probes;
* retention: KL to the parent on the parent's own replies (``EpochCheck``), the same quantity
  the retention budget bounds.

    python -m benchmarks.knowledge_update.frontier --seeds 101,102 --documents 30 \\
        --methods disc,disc_shuffled,sft --lrs 2e-3 --epochs 3 --out docs/results/frontier.jsonl

Prints one line per (method, lr, epoch) and appends JSON lines to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

from disc_engine.objectives import METHODS


def bootstrap_interval(values: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def _correct_and_margins(items: list[dict], option_scores: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per item: 1.0/0.0 correct, and log P(right) - max log P(wrong)."""
    correct, margins = [], []
    for item, scores in zip(items, option_scores):
        right = scores[item["answer"]]
        best_wrong = max(x for i, x in enumerate(scores) if i != item["answer"])
        correct.append(1.0 if right > best_wrong else 0.0)
        margins.append(right - best_wrong)
    return correct, margins


def probe_items(model, tokenizer, probes: list[dict]) -> tuple[list[float], list[float]]:
    """Per chat probe: correct or not, and the margin of the right option's reply log-likelihood."""
    from disc_engine.evaluation import option_scores

    return _correct_and_margins(probes, option_scores(model, tokenizer, probes))


def cloze_option_scores(model, tokenizer, clozes: list[dict]) -> list[list[float]]:
    """Per cloze, each option's summed log-probability as the plain-text continuation of the
    prompt (document style, no chat template)."""
    import torch

    from disc_engine.evaluation._common import batch_logits, encode, pad_token_id

    pad_id = pad_token_id(tokenizer)
    all_scores = []
    with torch.inference_mode():
        for cloze in clozes:
            prompt = encode(tokenizer, cloze["prompt"])
            options = [encode(tokenizer, option if option.startswith(" ") else " " + option)
                       for option in cloze["options"]]
            logits = batch_logits(model, [prompt + option for option in options], pad_id)
            scores = []
            for row, option in enumerate(options):
                log_probs = torch.log_softmax(logits[row, len(prompt) - 1:len(prompt) + len(option) - 1].float(), -1)
                scores.append(log_probs.gather(1, torch.tensor(option).unsqueeze(1)).sum().item())
            all_scores.append(scores)
    return all_scores


def cloze_items(model, tokenizer, clozes: list[dict]) -> tuple[list[float], list[float]]:
    """Per cloze: correct or not, and the margin (``cloze_option_scores``)."""
    return _correct_and_margins(clozes, cloze_option_scores(model, tokenizer, clozes))


def full_retention(model, tokenizer, *, max_new_tokens: int = 128) -> dict:
    """The retention item sets (``retention_items``), each >= 100 items: IFEval-type instruction
    compliance checked by the IFEval verifier code (strict reading), and general multiple-choice
    accuracy over all 120 questions; per-item results kept for intervals."""
    from benchmarks.knowledge_update.retention_items import (
        check_instruction,
        load_general_questions,
        load_instruction_items,
    )
    from disc_engine.evaluation._common import chat_prompt_ids, greedy_generate
    from disc_engine.evaluation.probes import probe_predictions

    items = load_instruction_items()
    generations = greedy_generate(model, tokenizer, [chat_prompt_ids(tokenizer, i["prompt"]) for i in items],
                                  max_new_tokens)
    followed = [1.0 if check_instruction(item, tokenizer.decode(g.tokens, skip_special_tokens=True).strip())
                else 0.0 for item, g in zip(items, generations)]
    questions = load_general_questions()
    predictions = probe_predictions(model, tokenizer, questions)
    right = [1.0 if p == q["answer"] else 0.0 for p, q in zip(predictions, questions)]
    return {"instruction_compliance": sum(followed) / len(followed),
            "instruction_compliance_ci": bootstrap_interval(followed),
            "n_instructions": len(followed), "instruction_followed": followed,
            "general_accuracy": sum(right) / len(right), "general_accuracy_ci": bootstrap_interval(right),
            "n_general": len(right), "general_correct": right}


def open_book_report(model_name: str, tokenizer, corpora: list[list[dict]]) -> str:
    """Chat-question accuracy of the untouched model closed-book and with the question's document
    before it in the same user turn: how much the teacher could pass on at most."""
    from disc_engine.models import load_model

    model = load_model(model_name).eval()
    closed, opened = [], []
    for corpus in corpora:
        for doc in corpus:
            for p in doc["probes"]:
                if p.get("kind", "question") == "question":
                    probe = {k: p[k] for k in ("question", "options", "answer")}
                    closed.append(probe)
                    opened.append({**probe, "question": f"{doc['text']}\n\n{p['question']}"})
    lines = []
    for name, probes in (("closed-book", closed), ("open-book (document in the turn)", opened)):
        correct, _ = probe_items(model, tokenizer, probes)
        low, high = bootstrap_interval(correct)
        lines.append(f"{name}: {100 * sum(correct) / len(correct):.1f}% [{100 * low:.1f}, {100 * high:.1f}] "
                     f"of {len(correct)} questions")
    return "\n".join(lines)


def append_json_lines(path: str, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def paired_gain_interval(after: list[float], before: list[float], *, resamples: int = 2000,
                         seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(after - before), resampling items (the same probes)."""
    return bootstrap_interval([a - b for a, b in zip(after, before)], resamples=resamples, seed=seed)


def at_matched_retention(points: list[dict], zero: dict, kl: float, key: str = "correct") -> dict | None:
    """The paired gain in ``key`` (per-item 0/1 lists) over ``zero`` where a run's KL to the parent
    first reaches ``kl``, interpolated linearly between the two measured epochs around it, with a
    95% bootstrap interval over items (each item's gain interpolated with the same weight).
    None when the run never reaches ``kl`` or the epochs around it lack the item lists."""
    found = _matched_item_gains(points, zero, kl, key)
    if found is None:
        return None
    gains, epochs = found
    return {"gain": sum(gains) / len(gains), "ci": bootstrap_interval(gains), "n": len(gains),
            "between_epochs": epochs}


def _matched_item_gains(points: list[dict], zero: dict, kl: float, key: str):
    """Each item's gain over ``zero`` where the run first reaches ``kl`` (interpolated), and the
    epochs around it; None when the run never reaches it or lacks the item lists."""
    ordered = sorted(points, key=lambda r: r["epoch"])
    for before, after in zip(ordered, ordered[1:]):
        low, high = before["retention_kl_vs_parent"], after["retention_kl_vs_parent"]
        if low <= kl <= high and high > low:
            if key not in before or key not in after:
                return None
            weight = (kl - low) / (high - low)
            gains = [(1 - weight) * (b - z) + weight * (a - z)
                     for b, a, z in zip(before[key], after[key], zero[key])]
            return gains, (before["epoch"], after["epoch"])
    return None


def matched_difference(points_a: list[dict], points_b: list[dict], kl: float, key: str = "correct") -> dict | None:
    """Run A's gain minus run B's at the same KL to the parent, each interpolated on its own
    frontier, with a paired 95% bootstrap interval over items: both runs must have scored the
    same items (the same corpus), in the same order. None where either run does not reach ``kl``."""
    zero_a = next((r for r in points_a if r["epoch"] == 0), None)
    zero_b = next((r for r in points_b if r["epoch"] == 0), None)
    if zero_a is None or zero_b is None or len(zero_a.get(key, ())) != len(zero_b.get(key, ())):
        return None
    found_a = _matched_item_gains(points_a, zero_a, kl, key)
    found_b = _matched_item_gains(points_b, zero_b, kl, key)
    if found_a is None or found_b is None:
        return None
    differences = [a - b for a, b in zip(found_a[0], found_b[0])]
    return {"difference": sum(differences) / len(differences), "ci": bootstrap_interval(differences),
            "n": len(differences)}


def _runs(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by run: (source file, method, learning rate) -> its measured epochs."""
    runs: dict[tuple, list[dict]] = {}
    for row in rows:
        runs.setdefault((row.get("source", 0), row["method"], row["lr"]), []).append(row)
    return runs


def within_budget_table(rows: list[dict], budgets: tuple[float, ...] = (0.25, 0.3, 0.35)) -> str:
    """What a retention budget would keep: per run and KL budget, the measured epoch with the best
    chat-question accuracy among those within the budget, its gain over epoch 0 with a paired
    interval. (The product's selector chooses by the closed-book gap, not by the probes; with
    knowledge rising epoch by epoch the two agree on these runs.)"""
    runs = _runs(rows)
    lines = ["| method | lr | KL budget | epoch kept | KL | chat-question gain, points [paired 95% CI] | "
             "cloze gain [paired CI] |", "|---|---:|---:|---:|---:|---|---|"]
    for (_, method, lr), points in sorted(runs.items()):
        zero = next((r for r in points if r["epoch"] == 0), None)
        if zero is None:
            continue
        for budget in budgets:
            best = _kept_epoch(points, budget)
            if best is None:
                lines.append(f"| {method} | {lr:g} | {budget:g} | 0 (none fits) | 0 | +0.0 | +0.0 |")
                continue
            cells = []
            for key, value in (("correct", "accuracy"), ("cloze_correct", "cloze_accuracy")):
                low, high = paired_gain_interval(best[key], zero[key])
                cells.append(f"{100 * (best[value] - zero[value]):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]")
            lines.append(f"| {method} | {lr:g} | {budget:g} | {best['epoch']} | {best['retention_kl_vs_parent']:.3f} "
                         f"| {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _kept_epoch(points: list[dict], budget: float) -> dict | None:
    """The measured epoch a KL budget keeps: the best chat-question accuracy among the epochs
    within it (the earlier on a tie); None when no trained epoch fits."""
    within = [r for r in points if r["epoch"] > 0 and r["retention_kl_vs_parent"] <= budget]
    return max(within, key=lambda r: (r["accuracy"], -r["epoch"])) if within else None


RUN_MEASURES = (("correct", "chat questions"), ("cloze_correct", "clozes"),
                ("instruction_followed", "instruction compliance"), ("general_correct", "general accuracy"))


def kept_difference_table(rows: list[dict], budget: float = 0.3) -> str:
    """Every pair of runs on the same items, each at the epoch the budget keeps (``_kept_epoch``):
    A − B in every measure both kept epochs scored, with paired 95% intervals. This compares what
    each method's update would deliver under the product's budget, whatever its rate and schedule."""
    runs = _runs(rows)
    lines = [f"| A (epoch kept at KL ≤ {budget:g}) | B (epoch kept) | "
             + " | ".join(f"{name}, A − B [paired CI]" for _, name in RUN_MEASURES) + " |",
             "|---|---|" + "---|" * len(RUN_MEASURES)]
    keys = sorted(runs)
    kept = {key: _kept_epoch(runs[key], budget) for key in keys}
    # The untouched model's per-item scores identify the items: runs on other corpora differ there.
    items = {key: next((tuple(r["correct"]) + tuple(r["cloze_correct"]) for r in runs[key] if r["epoch"] == 0), None)
             for key in keys}

    def name(key):
        row = kept[key]
        return f"{key[1]} {key[2]:g} (epoch {row['epoch']}, KL {row['retention_kl_vs_parent']:.3f})"

    for i, key_a in enumerate(keys):
        for key_b in keys[i + 1:]:
            a, b = kept[key_a], kept[key_b]
            if a is None or b is None or items[key_a] is None or items[key_a] != items[key_b]:
                continue   # nothing kept, or runs on different items
            lines.append(f"| {name(key_a)} | {name(key_b)} | "
                         + " | ".join(_paired_cell([(a, b)], key) for key, _ in RUN_MEASURES) + " |")
    return "\n".join(lines)


def method_difference_table(rows: list[dict], kls: tuple[float, ...] = (0.1, 0.2, 0.25, 0.3)) -> str:
    """Every pair of runs of different methods on the same items: knowledge at matched KL, A − B."""
    runs = _runs(rows)
    lines = ["| A | B | KL to parent | chat questions, A − B, points [paired 95% CI] | clozes, A − B |",
             "|---|---|---:|---|---|"]
    keys = sorted(runs)
    for i, key_a in enumerate(keys):
        for key_b in keys[i + 1:]:
            if key_a[1] == key_b[1]:
                continue
            for kl in kls:
                chat = matched_difference(runs[key_a], runs[key_b], kl)
                if chat is None:
                    continue
                cloze = matched_difference(runs[key_a], runs[key_b], kl, "cloze_correct")
                cells = ["n/a" if f is None else
                         f"{100 * f['difference']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}]"
                         for f in (chat, cloze)]
                lines.append(f"| {key_a[1]} {key_a[2]:g} | {key_b[1]} {key_b[2]:g} | {kl:g} "
                             f"| {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def same_schedule_table(rows: list[dict]) -> str:
    """Every pair of runs of different methods at the same learning rate, epoch by epoch: A − B in
    chat questions, clozes, instruction compliance and general accuracy, each with a paired 95%
    interval over the same items. For a variant that changes the loss but not the schedule (an
    extra term, say) this is the direct comparison; at matched KL it is not, when the variant
    changes what the KL measures."""
    runs = _runs(rows)
    measures = RUN_MEASURES
    lines = ["| A | B | lr | epoch | KL A / B | " + " | ".join(f"{name}, A − B [paired CI]" for _, name in measures)
             + " |", "|---|---|---:|---:|---|" + "---|" * len(measures)]
    keys = sorted(runs)
    for i, key_a in enumerate(keys):
        for key_b in keys[i + 1:]:
            if key_a[1] == key_b[1] or key_a[2] != key_b[2]:
                continue
            by_epoch_b = {r["epoch"]: r for r in runs[key_b]}
            pairs = [(a, by_epoch_b[a["epoch"]]) for a in sorted(runs[key_a], key=lambda r: r["epoch"])
                     if a["epoch"] > 0 and a["epoch"] in by_epoch_b]
            for a, b in pairs:
                lines.append(f"| {key_a[1]} | {key_b[1]} | {key_a[2]:g} | {a['epoch']} | "
                             f"{a['retention_kl_vs_parent']:.3f} / {b['retention_kl_vs_parent']:.3f} | "
                             + " | ".join(_paired_cell([(a, b)], key) for key, _ in measures) + " |")
            if len(pairs) > 1:
                # Each item's difference averaged over the epochs: the trajectory as a whole, with
                # the per-epoch noise of greedy generation averaged out.
                span = f"{pairs[0][0]['epoch']}–{pairs[-1][0]['epoch']} pooled"
                lines.append(f"| {key_a[1]} | {key_b[1]} | {key_a[2]:g} | {span} | — | "
                             + " | ".join(_paired_cell(pairs, key) for key, _ in measures) + " |")
    return "\n".join(lines)


def _paired_cell(pairs: list[tuple[dict, dict]], key: str) -> str:
    """Mean over items of A − B in ``key`` (each item's difference averaged over ``pairs``), with a
    paired 95% bootstrap interval; empty where a run lacks the item list."""
    if any(key not in a or key not in b or len(a[key]) != len(b[key]) for a, b in pairs):
        return ""
    count = len(pairs[0][0][key])
    differences = [sum(a[key][i] - b[key][i] for a, b in pairs) / len(pairs) for i in range(count)]
    mean, (low, high) = sum(differences) / count, bootstrap_interval(differences)
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def matched_retention_table(rows: list[dict], kls: tuple[float, ...] = (0.1, 0.25, 0.5)) -> str:
    """Knowledge (chat questions, clozes) and instruction compliance at matched KL to the parent,
    one line per run and KL; the epoch-0 row of each run is the reference."""
    lines = ["| method | lr | KL to parent | chat-question gain, points [95% CI] | cloze gain [95% CI] | "
             "instruction-compliance change [95% CI] | between epochs |", "|---|---:|---:|---|---|---|---|"]
    runs = _runs(rows)

    def cell(found):
        if found is None:
            return "n/a"
        return f"{100 * found['gain']:+.1f} [{100 * found['ci'][0]:+.1f}, {100 * found['ci'][1]:+.1f}]"

    for (_, method, lr), points in sorted(runs.items()):
        zero = next((r for r in points if r["epoch"] == 0), None)
        if zero is None:
            continue
        for kl in kls:
            chat = at_matched_retention(points, zero, kl)
            if chat is None:
                continue
            cloze = at_matched_retention(points, zero, kl, "cloze_correct")
            compliance = at_matched_retention(points, zero, kl, "instruction_followed")
            lines.append(f"| {method} | {lr:g} | {kl:g} | {cell(chat)} | {cell(cloze)} | {cell(compliance)} "
                         f"| {chat['between_epochs'][0]}–{chat['between_epochs'][1]} |")
    return "\n".join(lines)


def summarize(paths: list[str], plot: str | None = None) -> str:
    """A markdown table of the rows in ``paths`` (JSON lines from runs of this script): per method,
    learning rate and measured epoch, the gain over the untouched model with a paired interval."""
    # Rows of different files are different runs, even at the same method and learning rate.
    rows = [{**json.loads(line), "source": number} for number, path in enumerate(paths)
            for line in Path(path).read_text().splitlines() if line.strip()]
    base = {}
    for row in rows:
        if row["epoch"] == 0:
            base[(row["source"], row["method"], row["lr"])] = row
    lines = ["| method | lr | epoch | chat-question accuracy % [95% CI] | gain, points [paired 95% CI] | "
             "cloze accuracy % [95% CI] | cloze gain, points [paired CI] | KL to parent | "
             "instruction compliance % (change [paired CI]) | "
             "general accuracy % |", "|---|---:|---:|---|---|---|---|---:|---:|---:|"]

    def pct(value, interval=None):
        text = f"{100 * value:.1f}"
        return text + (f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else "")

    for row in sorted(rows, key=lambda r: (r["source"], r["method"], r["lr"], r["epoch"])):
        zero = base.get((row["source"], row["method"], row["lr"]))
        gain = cloze_gain = ""
        if zero is not None and row["epoch"] > 0:
            low, high = paired_gain_interval(row["correct"], zero["correct"])
            gain = f"{100 * (row['accuracy'] - zero['accuracy']):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
            low, high = paired_gain_interval(row["cloze_correct"], zero["cloze_correct"])
            cloze_gain = (f"{100 * (row['cloze_accuracy'] - zero['cloze_accuracy']):+.1f} "
                          f"[{100 * low:+.1f}, {100 * high:+.1f}]")
        retention = ("", "")
        if "general_accuracy" in row:
            retention = (pct(row["instruction_compliance"], row["instruction_compliance_ci"]),
                         pct(row["general_accuracy"], row["general_accuracy_ci"]))
            if zero is not None and row["epoch"] > 0 and "instruction_followed" in zero:
                low, high = paired_gain_interval(row["instruction_followed"], zero["instruction_followed"])
                change = row["instruction_compliance"] - zero["instruction_compliance"]
                retention = (retention[0] + f" ({100 * change:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}])",
                             retention[1])
        lines.append(f"| {row['method']} | {row['lr']:g} | {row['epoch']} | {pct(row['accuracy'], row['accuracy_ci'])} "
                     f"| {gain} | {pct(row['cloze_accuracy'], row['cloze_accuracy_ci'])} | {cloze_gain} "
                     f"| {row['retention_kl_vs_parent']:.3f} | {retention[0]} | {retention[1]} |")
    lines += ["", "Knowledge and instruction compliance at matched retention (interpolated between the "
              "measured epochs around each KL; paired 95% intervals over items):", "",
              matched_retention_table(rows), "",
              "What a KL budget keeps (the best measured epoch within it):", "", within_budget_table(rows), "",
              "What the default budget keeps, run against run (each at its own kept epoch; same items; "
              "paired 95% intervals):", "", kept_difference_table(rows), "",
              "Method against method at matched retention (same items, "
              "each run interpolated on its own frontier; paired 95% intervals):", "", method_difference_table(rows),
              "", "Method against method at the same learning rate and epoch (same items; paired 95% intervals):", "",
              same_schedule_table(rows)]
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # A second panel where runs measured instruction compliance at several epochs: the retention
        # measure no training term sees (chat replay trains the KL down directly).
        with_compliance = sum(1 for r in rows if "instruction_compliance" in r) > len({r["source"] for r in rows})
        figure, axes = plt.subplots(1, 2 if with_compliance else 1, figsize=(12 if with_compliance else 6.5, 4.2),
                                    squeeze=False)
        panels = [(axes[0][0], "retention_kl_vs_parent", 1.0,
                   "KL to the parent on its own chat replies (lower = more kept; symlog)")]
        if with_compliance:
            panels.append((axes[0][1], "instruction_compliance", 100.0,
                           "instruction compliance, % of 110 IFEval-type prompts (higher = more kept)"))
        for axis, measure, scale, xlabel in panels:
            for key in sorted({(r["source"], r["method"], r["lr"]) for r in rows}):
                points = sorted((r for r in rows if (r["source"], r["method"], r["lr"]) == key and measure in r),
                                key=lambda r: r["epoch"])
                if not points:
                    continue
                xs = [scale * r[measure] for r in points]
                ys = [100 * r["accuracy"] for r in points]
                errors = [[100 * (r["accuracy"] - r["accuracy_ci"][0]) for r in points],
                          [100 * (r["accuracy_ci"][1] - r["accuracy"]) for r in points]]
                label = f"{key[1]} lr {key[2]:g}" + (f" (run {key[0] + 1})" if len(paths) > 1 else "")
                axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
                for r, x, y in zip(points, xs, ys):
                    axis.annotate(str(r["epoch"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            axis.set_xlabel(xlabel)
            axis.set_ylabel("chat-question probe accuracy, % (95% CI)")
            axis.legend(fontsize=8)
        axes[0][0].set_xscale("symlog", linthresh=0.1)   # a diverged epoch stays on the page
        if with_compliance:
            axes[0][1].invert_xaxis()   # retention lost to the right, as on the KL panel
        figure.suptitle("Knowledge vs retention, epoch by epoch (numbers: epochs)")
        figure.tight_layout()
        figure.savefig(plot, dpi=120)
    return "\n".join(lines)


def parse_options(pairs: list[str]) -> dict:
    """``--set`` pairs as TrainConfig options: ``replay_weight=1`` -> {"replay_weight": 1}."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set expects OPTION=VALUE, got {pair!r}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="101,102")
    parser.add_argument("--documents", type=int, default=30, help="documents per corpus seed")
    parser.add_argument("--methods", default="disc,disc_shuffled,sft")
    parser.add_argument("--lrs", default="2e-3")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-splits", default="5")
    parser.add_argument("--documents-per-step", type=int, default=1,
                        help="documents per optimizer step (TrainConfig.documents_per_step)")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", dest="options",
                        help="another TrainConfig option for every run (JSON value), e.g. replay_weight=1; "
                             "repeatable")
    parser.add_argument("--label", default=None,
                        help="the name the rows carry instead of the method's (a variant made with --set)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--split", choices=("tuning", "report"), default=None,
                        help="draw --documents in all over the split's three corpus seeds (held_out_corpora) "
                             "instead of --seeds")
    parser.add_argument("--measure-every", type=int, default=1,
                        help="measure every N-th epoch (the untouched model and the last epoch always)")
    parser.add_argument("--full-retention", action="store_true",
                        help="also measure instruction compliance and general accuracy (>= 100 items each) "
                             "on the untouched model and after the last epoch")
    parser.add_argument("--full-retention-every-epoch", action="store_true",
                        help="with --full-retention: at every measured epoch, not only the first and last "
                             "(to calibrate the retention budget's KL against the skills it stands for)")
    parser.add_argument("--open-book", action="store_true",
                        help="only score the untouched model's chat questions with and without the document "
                             "in the user turn (the teacher's ceiling), with 95% intervals, and exit")
    parser.add_argument("--summarize", nargs="+", metavar="JSONL", default=None,
                        help="print a table of earlier runs' JSON lines (and --plot a figure) instead of running")
    parser.add_argument("--plot", default=None, help="with --summarize: write the frontier figure here (PNG)")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize, args.plot))
        return 0

    from benchmarks.knowledge_update.corpus import generate_corpus
    from disc_engine.budget import EpochSelector, RetentionBudget
    from disc_engine.evaluation.epoch_check import EpochCheck
    from disc_engine.models import DEFAULT_MODEL, load_tokenizer
    from disc_engine.trainer import TrainConfig, train

    model_name = args.model or DEFAULT_MODEL
    tokenizer = load_tokenizer(model_name)
    documents, probes, clozes = [], [], []
    if args.split:
        from benchmarks.knowledge_update.corpus import held_out_corpora

        corpora = list(held_out_corpora(args.split, args.documents).values())
    else:
        corpora = [generate_corpus(args.documents, seed=int(s)) for s in args.seeds.split(",")]
    for corpus in corpora:
        for doc in corpus:
            documents.append(doc["text"])
            for p in doc["probes"]:
                if p.get("kind", "question") == "question":
                    probes.append({k: p[k] for k in ("question", "options", "answer")})
                else:
                    clozes.append(p)
    if args.open_book:
        print(open_book_report(model_name, tokenizer, corpora))
        return 0
    num_splits = args.num_splits if args.num_splits == "all" else int(args.num_splits)
    options = parse_options(args.options)
    print(f"{len(documents)} documents, {len(probes)} questions, {len(clozes)} clozes, model {model_name}",
          flush=True)

    for lr in (float(x) for x in args.lrs.split(",")):
        for method in args.methods.split(","):
            if method not in METHODS:
                raise SystemExit(f"unknown method {method!r}; known: {', '.join(METHODS)}")
            check = EpochCheck(tokenizer, documents)
            rows: list[dict] = []
            config = TrainConfig(method=method, learning_rate=lr, epochs=args.epochs, num_splits=num_splits, seed=0,
                                 retention_budget_kl=None, documents_per_step=args.documents_per_step, **options)
            # Chat replay is on by default for every method: a run's name says so unless --label names it.
            label = args.label or (f"{method}+replay" if config.replay_weight > 0 else method)
            epochs = itertools.count()   # measure is called once for the untouched model, then after every epoch

            def measure(model, _check=check, _rows=rows, _label=label, _lr=lr, _epochs=epochs,
                        _replay=config.replay_weight):
                epoch = next(_epochs)
                scores = _check(model)
                if epoch not in (0, args.epochs) and epoch % args.measure_every:
                    return scores
                correct, margins = probe_items(model, tokenizer, probes)
                cloze_correct, cloze_margins = cloze_items(model, tokenizer, clozes)
                row = {"method": _label, "lr": _lr, "options": options, "replay_weight": _replay,
                       "num_splits": num_splits,
                       "epoch": epoch,
                       "documents_per_step": args.documents_per_step,
                       "n_probes": len(correct),
                       "accuracy": sum(correct) / len(correct), "accuracy_ci": bootstrap_interval(correct),
                       "margin": sum(margins) / len(margins), "margin_ci": bootstrap_interval(margins),
                       "retention_kl_vs_parent": scores["retention_kl_vs_parent"],
                       "gap_closed": scores["knowledge"], "correct": correct,
                       "n_clozes": len(cloze_correct),
                       "cloze_accuracy": sum(cloze_correct) / len(cloze_correct) if cloze_correct else None,
                       "cloze_accuracy_ci": bootstrap_interval(cloze_correct),
                       "cloze_margin": sum(cloze_margins) / len(cloze_margins) if cloze_margins else None,
                       "cloze_correct": cloze_correct}
                if args.full_retention and (args.full_retention_every_epoch or epoch in (0, args.epochs)):
                    row.update(full_retention(model, tokenizer))
                _rows.append(row)
                print(f"{row['method']:14s} lr {_lr:.0e} epoch {row['epoch']}: accuracy {row['accuracy']:.3f} "
                      f"[{row['accuracy_ci'][0]:.3f}, {row['accuracy_ci'][1]:.3f}]  margin {row['margin']:+.3f}  "
                      f"KL {row['retention_kl_vs_parent']:.4f}  gap closed {row['gap_closed']:.3f}"
                      + (f"  cloze {row['cloze_accuracy']:.3f} [{row['cloze_accuracy_ci'][0]:.3f}, "
                         f"{row['cloze_accuracy_ci'][1]:.3f}]" if cloze_correct else "")
                      + (f"  instructions {row['instruction_compliance']:.3f}  general {row['general_accuracy']:.3f}"
                         if "general_accuracy" in row else ""), flush=True)
                return scores

            selector = EpochSelector(RetentionBudget(max_kl_vs_parent=float("inf"), min_gain=-1e9,
                                                     patience=10**6), measure)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                train(documents, out_dir=str(Path(out) / "v1"), base_model=model_name, epoch_selector=selector,
                      config=config)
            print(f"{method} lr {lr:.0e}: {time.perf_counter() - started:.0f} s", flush=True)
            if args.out:
                append_json_lines(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
