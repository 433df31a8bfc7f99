"""The lineage-over-days benchmark: its figures and tables, and a quick chain through a real
embedded service (worker and API processes, HTTP) on the tiny model."""

from __future__ import annotations

import json

import pytest

from benchmarks.continual import chain as bench
from benchmarks.continual.corpus import generate_chain


def _item(kind="question", category="untouched", correct=1, has_stale=0, stale=0, introduced_on=0, fact="f"):
    return {"fact": fact, "kind": kind, "category": category, "introduced_on": introduced_on,
            "correct": correct, "has_stale": has_stale, "stale": stale}


def test_probe_results_mark_correct_and_stale_choices():
    chain = generate_chain(seed=0, days=3, initial_entities=4, new_entities_per_day=1)
    day = next(d.index for d in chain.days if d.updated_facts)
    probes = chain.probes_after(day)
    updated = next(i for i, p in enumerate(probes) if p["stale"])
    chosen = [p["answer"] for p in probes]
    chosen[updated] = probes[updated]["stale"][0]
    items = bench.probe_results(probes, chosen)
    assert len(items) == len(probes)
    assert items[updated]["correct"] == 0 and items[updated]["stale"] == 1 and items[updated]["has_stale"] == 1
    assert sum(i["correct"] for i in items) == len(probes) - 1
    assert sum(i["stale"] for i in items) == 1


def test_figures_split_by_kind_and_category_with_intervals():
    items = ([_item(category="new", correct=c) for c in (1, 1, 0, 0)]
             + [_item(category="updated", correct=0, has_stale=1, stale=1)]
             + [_item(kind="cloze", category="new", correct=1)])
    question = bench.figures(items, "question")
    assert question["new"]["value"] == 0.5 and question["new"]["n"] == 4
    low, high = question["new"]["ci"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert question["latest"]["n"] == 5 and question["latest"]["value"] == pytest.approx(0.4)
    assert question["stale_rate"] == {"value": 1.0, "ci": (1.0, 1.0), "n": 1}
    assert question["untouched"] == {"value": None, "ci": None, "n": 0}
    assert bench.figures(items, "cloze")["new"]["value"] == 1.0


def test_policy_table_holds_back_what_each_bound_refuses():
    rows = [{"method": "disc", "day": day, "chain": {"seed": 0}, "items": [],
             "scores": {"retention_kl_vs_parent": parent, "retention_kl_vs_base": base}}
            for day, parent, base in ((0, 0.2, 0.2), (1, 0.3, 0.6), (2, 0.5, 1.1), (3, 0.2, None))]
    table = bench.policy_table(rows).splitlines()
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    # day 3 passes the parent bound but has no base measurement: a base bound cannot pass it
    assert cells == ["disc", "0", "days 2", "days 2, 3", "days 1, 2, 3"]


def test_update_body_sets_each_methods_options():
    docs = [{"text": "x"}]
    assert bench.update_body("disc", "l", docs, None, 1e-4) == {
        "documents": docs, "lineage": "l", "method": "disc", "hyperparameters": {}}
    assert bench.update_body("sft", "l", docs, 2, 1e-4)["hyperparameters"] == {"epochs": 2, "learning_rate": 1e-4}
    assert bench.update_body("retrain", "l", docs, None, 1e-4)["method"] == "disc"
    assert bench.update_body("disc@3e-4", "l", docs, None, 1e-4)["hyperparameters"] == {"learning_rate": 3e-4}
    assert bench.update_body("sft@1e-3", "l", docs, None, 1e-4)["hyperparameters"] == {"learning_rate": 1e-3}


@pytest.mark.parametrize("methods, message", [("disc,magic", "unknown method 'magic'"),
                                               ("disc@fast", "must be a number")])
def test_unknown_method_is_refused(capsys, methods, message):
    with pytest.raises(SystemExit):
        bench.main(["--methods", methods])
    assert message in capsys.readouterr().err


def test_quick_chain_through_the_service(tmp_path, tiny_model):
    """Two days posted over HTTP to a real worker: one chained lineage (versions 1 and 2, the first
    the second's parent) and the retrain reference on the last day; every probe scored."""
    out = tmp_path / "chain.jsonl"
    assert bench.main(["--quick", "--model", tiny_model, "--methods", "disc,retrain",
                       "--home", str(tmp_path / "home"), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    chain = generate_chain(**rows[0]["chain"])
    by_method = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    assert sorted(r["day"] for r in by_method["base"]) == [0, 1]
    disc = sorted(by_method["disc"], key=lambda r: r["day"])
    assert [(r["day"], r["version"]) for r in disc] == [(0, 1), (1, 2)]
    assert [r["documents"] for r in disc] == [len(d.records) for d in chain.days]
    (retrain,) = by_method["retrain"]
    assert (retrain["day"], retrain["version"]) == (1, 1)
    assert retrain["documents"] == sum(len(d.records) for d in chain.days)
    for row in rows:
        assert len(row["items"]) == len(chain.probes_after(row["day"]))
    # The first version's parent is the base: its drift from both is the same measurement.
    first = disc[0]["scores"]
    assert first["retention_kl_vs_base"] == pytest.approx(first["retention_kl_vs_parent"], rel=1e-3)
    assert all(r["scores"]["retention_kl_vs_base"] is not None for r in disc)

    plot = tmp_path / "chain.png"
    text = bench.summarize([str(out), str(out)], str(plot))  # the same file twice: rows counted once
    assert text.count("| disc | 1 |") == 2  # questions and clozes
    assert "| retrain | 1 |" in text and "| disc − base |" in text
    assert plot.stat().st_size > 10_000


def test_seeds_pool_into_one_row_per_method_and_day_and_differences_are_paired():
    def row(method, seed, day, correct):
        return {"method": method, "day": day, "chain": {"seed": seed}, "state": "promoted",
                "scores": {"retention_kl_vs_base": 0.1 * (seed + 1)},
                "items": [_item(category="new", correct=c, fact=f"f{n}") for n, c in enumerate(correct)]}

    rows = [row("base", 0, 1, [0, 0]), row("base", 1, 1, [0, 1]),
            row("disc", 0, 1, [1, 1]), row("disc", 1, 1, [1, 0])]
    merged = {(r["method"], r["day"]): r for r in bench.merged_by_day(rows)}
    disc = merged[("disc", 1)]
    assert disc["seeds"] == [0, 1] and len(disc["items"]) == 4
    assert disc["scores"]["retention_kl_vs_base"] == pytest.approx(0.15)
    table = bench.pooled_table(rows)
    assert "| disc | 75 [" in table and "(n=4)" in table
    # paired on (seed, day, fact): +1, +1, +1, -1 -> +50 points
    assert "| disc − base | +50.0 [" in table

