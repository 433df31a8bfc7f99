"""The frontier benchmark's arithmetic: gains at matched retention, interpolated between epochs."""

from __future__ import annotations

import json

import pytest

from benchmarks.knowledge_update.frontier import (
    at_matched_retention,
    kept_difference_table,
    matched_difference,
    parse_options,
    same_schedule_table,
    summarize,
    within_budget_table,
)


def _row(epoch, kl, correct, followed=None):
    row = {"method": "disc", "lr": 2e-3, "epoch": epoch, "retention_kl_vs_parent": kl, "correct": correct,
           "cloze_correct": correct, "accuracy": sum(correct) / len(correct), "accuracy_ci": (0, 1),
           "cloze_accuracy": sum(correct) / len(correct), "cloze_accuracy_ci": (0, 1)}
    if followed is not None:
        row.update(instruction_followed=followed, instruction_compliance=sum(followed) / len(followed),
                   instruction_compliance_ci=(0, 1), general_accuracy=0.5, general_accuracy_ci=(0, 1))
    return row


ZERO = _row(0, 0.0, [0, 0, 0, 0], [1, 1, 1, 1])
ONE = _row(1, 0.2, [1, 0, 0, 0], [1, 1, 1, 0])
TWO = _row(2, 0.6, [1, 1, 1, 0], [1, 0, 0, 0])


def test_a_gain_is_interpolated_between_the_epochs_around_the_kl():
    found = at_matched_retention([TWO, ZERO, ONE], ZERO, 0.4)
    assert found["between_epochs"] == (1, 2) and found["n"] == 4
    # Halfway from +25 points (epoch 1) to +75 points (epoch 2).
    assert found["gain"] == pytest.approx(0.5)
    assert found["ci"][0] <= 0.5 <= found["ci"][1]
    assert at_matched_retention([ZERO, ONE, TWO], ZERO, 0.1)["gain"] == pytest.approx(0.125)
    drop = at_matched_retention([ZERO, ONE, TWO], ZERO, 0.6, "instruction_followed")
    assert drop["gain"] == pytest.approx(-0.75)


def test_a_kl_the_run_never_reaches_has_no_value():
    assert at_matched_retention([ZERO, ONE, TWO], ZERO, 0.9) is None
    assert at_matched_retention([ZERO, _row(1, 0.5, [1, 1, 0, 0])], ZERO, 0.3, "instruction_followed") is None


def test_the_summary_keeps_runs_of_different_files_apart(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in (ZERO, ONE, TWO)))
    second.write_text("".join(json.dumps(r) + "\n" for r in (ZERO, _row(1, 0.8, [1, 1, 1, 1], [0, 0, 0, 0]))))
    table = summarize([str(first), str(second)])
    assert "(-25.0 [" in table           # epoch 1 of the first run against its own epoch 0
    at_half = [line for line in table.splitlines() if line.startswith("| disc | 0.002 | 0.5 |")]
    # One line per run: the first between its epochs 1 and 2, the second between 0 and 1.
    assert [line.rsplit("|", 2)[1].strip() for line in at_half] == ["1–2", "0–1"]


def test_methods_are_compared_at_the_same_kl_item_by_item():
    other = [{**r, "method": "disc_recall"} for r in (ZERO, _row(1, 0.4, [1, 1, 1, 1]))]
    # At KL 0.2: disc has gained +25 points (epoch 1); disc_recall is halfway to +100 → +50.
    found = matched_difference(other, [ZERO, ONE, TWO], 0.2)
    assert found["difference"] == pytest.approx(0.25) and found["n"] == 4
    assert found["ci"][0] <= 0.25 <= found["ci"][1]
    assert matched_difference(other, [ZERO, ONE, TWO], 0.5) is None     # disc_recall never reaches it
    assert matched_difference(other, [_row(0, 0.0, [0, 0]), _row(1, 0.3, [1, 1])], 0.2) is None  # other items


def test_a_budget_keeps_the_best_epoch_within_it():
    table = within_budget_table([ZERO, ONE, TWO], budgets=(0.1, 0.3, 0.6))
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [(r[2], r[3]) for r in rows] == [("0.1", "0 (none fits)"), ("0.3", "1"), ("0.6", "2")]
    assert rows[2][5].startswith("+75.0 [")


def test_a_variant_is_compared_with_its_base_epoch_by_epoch_on_the_same_items():
    variant = [{**r, "method": "disc+replay"} for r in (ZERO, _row(1, 0.1, [1, 1, 0, 0], [1, 1, 1, 1]),
                                                       _row(2, 0.2, [1, 1, 1, 1], [1, 1, 0, 0]))]
    rows = [line.split(" | ") for line in same_schedule_table([ZERO, ONE, TWO, *variant]).splitlines()[2:]]
    assert [(r[0].strip("| "), r[1], r[3]) for r in rows] == [("disc", "disc+replay", "1"),
                                                              ("disc", "disc+replay", "2"),
                                                              ("disc", "disc+replay", "1–2 pooled")]
    # Pooled: each item's difference averaged over the two epochs, then over items.
    assert rows[2][5].startswith("-25.0 [") and rows[2][7].startswith("-25.0 [")
    # Epoch 1: disc got 1 of 4 right, the variant 2 (-25 points); it followed 3 instructions, the variant 4.
    assert rows[0][5].startswith("-25.0 [") and rows[0][7].startswith("-25.0 [")
    assert rows[1][5].startswith("-25.0 [") and rows[1][7].startswith("-25.0 [")
    assert rows[0][8].strip(" |") == "" and rows[0][4] == "0.200 / 0.100"    # general accuracy has no item list here
    other_rate = [{**r, "lr": 1e-3} for r in variant]
    assert len(same_schedule_table([ZERO, ONE, TWO, *other_rate]).splitlines()) == 2   # no pair across rates
    assert same_schedule_table([ZERO, ONE, variant[0], variant[1]]).count("pooled") == 0  # one epoch: no pool


def test_options_for_every_run_are_read_as_json_values():
    assert parse_options(["replay_weight=1", "num_splits=\"all\"", "method_label=x"]) == {
        "replay_weight": 1, "num_splits": "all", "method_label": "x"}
    with pytest.raises(SystemExit, match="OPTION=VALUE"):
        parse_options(["replay_weight"])


def test_the_plot_gains_a_compliance_panel_when_runs_measured_it(tmp_path):
    from PIL import Image

    with_compliance, kl_only = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with_compliance.write_text("".join(json.dumps(r) + "\n" for r in (ZERO, ONE, TWO)))
    measured_kl_only = [{k: v for k, v in r.items() if not k.startswith(("instruction", "general"))}
                        for r in (ZERO, ONE, TWO)]
    kl_only.write_text("".join(json.dumps(r) + "\n" for r in measured_kl_only))
    summarize([str(with_compliance)], plot=str(tmp_path / "two.png"))
    summarize([str(kl_only)], plot=str(tmp_path / "one.png"))
    two, one = Image.open(tmp_path / "two.png").size, Image.open(tmp_path / "one.png").size
    assert two[0] > 1.5 * one[0] and two[1] == one[1]


def test_runs_are_compared_at_the_epochs_the_budget_keeps_whatever_their_schedules():
    fine_tuned = [{**r, "method": "sft_kl", "lr": 1e-4} for r in (ZERO, _row(1, 0.05, [1, 1, 0, 0], [1, 1, 1, 1]),
                                                                  _row(2, 0.9, [1, 1, 1, 1], [0, 0, 0, 0]))]
    rows = [line.split(" | ") for line in kept_difference_table([ZERO, ONE, TWO, *fine_tuned],
                                                                budget=0.3).splitlines()[2:]]
    # disc keeps its epoch 1 (KL 0.2; epoch 2 is over), sft_kl its epoch 1 (KL 0.05; epoch 2 is over).
    assert len(rows) == 1
    assert rows[0][0] == "| disc 0.002 (epoch 1, KL 0.200)" and rows[0][1] == "sft_kl 0.0001 (epoch 1, KL 0.050)"
    # disc got 1 of 4 questions, sft_kl 2; disc followed 3 instructions, sft_kl 4.
    assert rows[0][2].startswith("-25.0 [") and rows[0][4].startswith("-25.0 [")
    other_items = [{**r, "method": "sft", "correct": [1, 0, 1, 0]} if r["epoch"] == 0 else {**r, "method": "sft"}
                   for r in (ZERO, ONE)]
    assert len(kept_difference_table([ZERO, ONE, TWO, *other_items]).splitlines()) == 2   # other items: no pair


def test_a_run_names_the_chat_replay_it_trained_with(tiny_model, tmp_path):
    """Replay is on by default for every method, so a run's rows say whether it trained with it."""
    from benchmarks.knowledge_update.frontier import main

    out = tmp_path / "rows.jsonl"
    for extra in ([], ["--set", "replay_weight=0"]):
        assert main(["--seeds", "101", "--documents", "1", "--methods", "sft_kl", "--lrs", "1e-3", "--epochs", "1",
                     "--model", tiny_model, "--out", str(out), *extra]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["method"], r["replay_weight"], r["epoch"]) for r in rows] == [
        ("sft_kl+replay", 1.0, 0), ("sft_kl+replay", 1.0, 1), ("sft_kl", 0, 0), ("sft_kl", 0, 1)]
