"""A lineage over many days, through the real service: one update per day, every version scored.

The fact-change chain (``benchmarks.continual.corpus``) is posted day by day to a running
service — the embedded default of ``disc demo`` (SQLite, a real worker process, HTTP) on the
default model — one lineage per method, so version n is trained from version n−1, its teacher.
After every version the benchmark loads the version's artifact from the service's store and
scores every fact known by that day, with a chat question and a document-style cloze each:

- new-fact accuracy (facts introduced that day), updated accuracy (facts whose value changed
  that day), latest-value accuracy (every fact's current value), the stale rate (a superseded
  value chosen where one is offered) and the retention of untouched earlier facts;
- drift from the *base*: the service's own scores of the version (KL to the base and to the
  parent on their chat replies, format compliance, general multiple choice), so what a chain
  of steps accumulates is visible next to what each step cost against its parent.

``retrain`` is the reference: for each day, a fresh lineage trained by DiSC from the base on
every document up to that day, in one update.

    python -m benchmarks.continual.chain --quick                       # minutes: 2 days, 1 epoch
    python -m benchmarks.continual.chain --methods disc,sft_kl --out docs/results/continual_a.jsonl &
    python -m benchmarks.continual.chain --methods sft,retrain --out docs/results/continual_b.jsonl &
    python -m benchmarks.continual.chain --summarize docs/results/continual_*.jsonl \\
        --plot docs/results/continual.png

Training options are the product's defaults (retention budget included) except the learning
rate of the fine-tuning baselines (``--finetune-lr``; the product's 1e-3 is DiSC's). Each
version's row (JSON lines) keeps the per-probe results, so intervals are bootstrapped over
probes when summarizing.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from benchmarks.continual.corpus import CATEGORIES, generate_chain
from benchmarks.knowledge_update.frontier import append_json_lines, bootstrap_interval
from disc_cli.demo import EmbeddedService

CHAIN_METHODS = ("disc", "sft", "sft_kl", "retrain")
# The fine-tuning baselines' rate: on the knowledge-update frontier, LoRA fine-tuning at 1e-4
# reached DiSC's knowledge with about twice its drift; at DiSC's 1e-3 it drifts past any budget.
FINETUNE_LR = 1e-4
QUICK = {"days": 1, "initial_entities": 3, "new_entities_per_day": 1, "epochs": 1, "retrain_days": "1"}
# Promotion policies compared on the measured versions: the gate against the parent alone, and
# with a bound on the drift from the base (the cumulative one).
POLICIES = (("parent KL ≤ 0.45", 0.45, None), ("and base KL ≤ 1.0", 0.45, 1.0), ("and base KL ≤ 0.5", 0.45, 0.5))
SERVICE_SCORES = ("retention_kl_vs_parent", "retention_kl_vs_base", "format_compliance", "general_mc_accuracy",
                  "knowledge_gap_closed_fraction")


# --- scoring a model on the chain's probes --------------------------------------------------------

def choose(model, tokenizer, probes: list[dict]) -> list[int]:
    """The option the model ranks first for each probe: chat questions by their reply's
    log-likelihood, clozes as the statement's plain-text continuation."""
    from benchmarks.knowledge_update.frontier import cloze_option_scores
    from disc_engine.evaluation import option_scores

    questions = [i for i, p in enumerate(probes) if p["kind"] == "question"]
    clozes = [i for i, p in enumerate(probes) if p["kind"] == "cloze"]
    chosen = [0] * len(probes)
    scored = list(zip(questions, option_scores(model, tokenizer, [probes[i] for i in questions])))
    scored += zip(clozes, cloze_option_scores(model, tokenizer, [probes[i] for i in clozes]))
    for index, scores in scored:
        chosen[index] = max(range(len(scores)), key=scores.__getitem__)
    return chosen


def probe_results(probes: list[dict], chosen: list[int]) -> list[dict]:
    """One compact record per probe: what summarizing needs for every figure and its interval."""
    return [{"fact": p["fact"], "kind": p["kind"], "category": p["category"], "introduced_on": p["introduced_on"],
             "correct": int(c == p["answer"]), "has_stale": int(bool(p["stale"])), "stale": int(c in p["stale"])}
            for p, c in zip(probes, chosen)]


def figures(items: list[dict], kind: str) -> dict:
    """Accuracy per category, latest-value accuracy over all facts and the stale rate, each with a
    95% bootstrap interval over probes and its count, for one probe kind."""
    mine = [i for i in items if i["kind"] == kind]
    out = {}
    groups = {"latest": mine, **{c: [i for i in mine if i["category"] == c] for c in CATEGORIES}}
    for name, group in groups.items():
        values = [i["correct"] for i in group]
        out[name] = _figure(values)
    out["stale_rate"] = _figure([i["stale"] for i in mine if i["has_stale"]])
    return out


def _figure(values: list[int]) -> dict:
    if not values:
        return {"value": None, "ci": None, "n": 0}
    return {"value": sum(values) / len(values), "ci": bootstrap_interval([float(v) for v in values]),
            "n": len(values)}


# --- the service --------------------------------------------------------------------------------

class ChainService(EmbeddedService):
    """``disc demo``'s embedded default (``disc_cli.demo.EmbeddedService``), with what the chain
    needs of it: submit an update, wait for its job, find a version's artifact."""

    def submit(self, body: dict) -> str:
        response = self.client.post("/updates", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST /updates answered {response.status_code}: {response.text}")
        return response.json()["id"]

    def wait(self, job_id: str, timeout_s: float = 6 * 3600) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.client.get(f"/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                if job["status"] != "succeeded":
                    raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}\n"
                                       f"{self.worker.tail()}")
                return job
            if not self.worker.alive():
                raise RuntimeError(f"the worker exited:\n{self.worker.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout_s:.0f} s")
            time.sleep(2.0)

    def artifact_dir(self, version: dict) -> Path:
        from store.storage import version_relpath

        return self.home / "artifacts" / version_relpath(version["lineage"], version["version"], version["job_id"])


# --- the chain ----------------------------------------------------------------------------------

def parse_method(spec: str) -> tuple[str, float | None]:
    """``disc`` or ``disc@3e-4``: a chain method and an optional learning rate of its own."""
    name, _, rate = spec.partition("@")
    if name not in CHAIN_METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(CHAIN_METHODS)}")
    try:
        return name, (float(rate) if rate else None)
    except ValueError:
        raise ValueError(f"{spec!r}: the learning rate after '@' must be a number") from None


def update_body(method: str, lineage: str, documents: list[dict], epochs: int | None, finetune_lr: float) -> dict:
    name, rate = parse_method(method)
    hyperparameters: dict = {}
    if epochs is not None:
        hyperparameters["epochs"] = epochs
    if rate is not None:
        hyperparameters["learning_rate"] = rate
    elif name in ("sft", "sft_kl"):
        hyperparameters["learning_rate"] = finetune_lr
    return {"documents": documents, "lineage": lineage, "method": "disc" if name == "retrain" else name,
            "hyperparameters": hyperparameters}


def run_chain(args) -> list[dict]:
    from disc_engine.artifacts import load_artifact
    from disc_engine.models import DEFAULT_MODEL, load_model, load_tokenizer

    chain = generate_chain(seed=args.seed, days=args.days, initial_entities=args.initial_entities,
                           new_entities_per_day=args.new_entities_per_day)
    days = range(len(chain.days))
    sizes = [len(d.records) for d in chain.days]
    print(f"chain seed {args.seed}: {len(chain.days)} days, documents per day {sizes}, "
          f"{len(chain.probes_after(days[-1]))} probes after the last day", flush=True)
    model_name = args.model or DEFAULT_MODEL
    tokenizer = load_tokenizer(model_name)
    base = load_model(model_name).eval()
    rows = []
    for day in days:
        probes = chain.probes_after(day)
        rows.append({"method": "base", "day": day, "chain": chain.params,
                     "items": probe_results(probes, choose(base, tokenizer, probes))})
    del base
    for row in rows:
        _save(args.out, row)
    started_all = time.perf_counter()
    with ChainService(Path(args.home), args.model, key_name="chain") as service:
        for method in args.methods:
            # The next update trains while the benchmark scores the version before it.
            label = method.replace("@", "-lr")
            plan = [(day, f"chain-{label}" if not method.startswith("retrain") else f"chain-{label}-day{day}",
                     [doc for d in days[:day + 1] for doc in chain.days[d].documents] if method.startswith("retrain")
                     else chain.days[day].documents) for day in days]
            if method.startswith("retrain") and args.retrain_days is not None:
                plan = [step for step in plan if step[0] in args.retrain_days]
            pending = None
            for day, lineage, documents in plan:
                started = time.perf_counter()
                job_id = service.submit(update_body(method, lineage, documents, args.epochs, args.finetune_lr))
                if pending is not None:
                    rows.append(score_version(service, chain, tokenizer, load_artifact, *pending))
                    _save(args.out, rows[-1])
                job = service.wait(job_id)
                pending = (method, day, job, time.perf_counter() - started, len(documents))
            rows.append(score_version(service, chain, tokenizer, load_artifact, *pending))
            _save(args.out, rows[-1])
    print(f"all done in {time.perf_counter() - started_all:.0f} s", flush=True)
    return rows


def _save(path: str | None, row: dict) -> None:
    """Each version's row as soon as it is scored, so a run stopped midway keeps what it measured."""
    if path:
        append_json_lines(path, [row])


def score_version(service: ChainService, chain, tokenizer, load_artifact, method: str, day: int, job: dict,
                  seconds: float, documents: int) -> dict:
    version = job["result_version"]
    events = service.client.get(f"/jobs/{job['id']}/events").json()["data"]
    chosen_epoch = next((e["data"] for e in reversed(events) if e["kind"] == "epoch_selected"), None) or {}
    model = load_artifact(service.artifact_dir(version), merged=True)
    probes = chain.probes_after(day)
    items = probe_results(probes, choose(model, tokenizer, probes))
    del model
    row = {"method": method, "day": day, "chain": chain.params, "version": version["version"],
           "state": version["state"], "documents": documents, "seconds": round(seconds),
           "best_epoch": chosen_epoch.get("best_epoch"),
           "scores": {k: version["scores"].get(k) for k in SERVICE_SCORES}, "items": items}
    question = figures(items, "question")
    print(f"{method:>8} day {day}: v{version['version']} {version['state']}, kept epoch {row['best_epoch']}, "
          f"KL parent {_num(row['scores']['retention_kl_vs_parent'])} "
          f"base {_num(row['scores']['retention_kl_vs_base'])}; "
          f"questions latest {_pct(question['latest'])}, new {_pct(question['new'])}, updated "
          f"{_pct(question['updated'])}, untouched {_pct(question['untouched'])}, stale "
          f"{_pct(question['stale_rate'])}; {row['seconds']} s", flush=True)
    return row


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _pct(figure: dict) -> str:
    if figure["value"] is None:
        return "—"
    return f"{100 * figure['value']:.0f}% (n={figure['n']})"


# --- summarizing ----------------------------------------------------------------------------------

def load_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    # A base row per (chain, day) is written by every run on the same chain: keep one.
    seen, unique = set(), []
    for row in rows:
        key = (row["method"], row["day"], json.dumps(row["chain"], sort_keys=True))
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def merged_by_day(rows: list[dict]) -> list[dict]:
    """Rows of one method and day from chains of different seeds as one row: their probes pooled
    (each tagged with its chain's seed and the day), their drift scores averaged."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["day"]), []).append(row)
    merged = []
    for (method, day), group in groups.items():
        scores = {}
        for key in SERVICE_SCORES:
            values = [r.get("scores", {}).get(key) for r in group]
            values = [v for v in values if v is not None]
            scores[key] = sum(values) / len(values) if values else None
        states = sorted({r["state"] for r in group if r.get("state")})
        merged.append({"method": method, "day": day, "seeds": sorted(r["chain"]["seed"] for r in group),
                       "chain": group[0]["chain"], "scores": scores, "state": "/".join(states) or "—",
                       "items": [{**i, "seed": r["chain"]["seed"], "day": day} for r in group for i in r["items"]]})
    return merged


# Figures pooled over the update days, so that a few facts a day still add up to a measure with
# an interval: (name, which probes, which field of a probe's result).
POOLED = (("new", lambda i: i["category"] == "new", "correct"),
          ("updated", lambda i: i["category"] == "updated", "correct"),
          ("untouched", lambda i: i["category"] == "untouched", "correct"),
          ("stale rate", lambda i: bool(i["has_stale"]), "stale"))


def _by_probe(rows: list[dict], method: str, kind: str, days: set[int]) -> dict[tuple, dict]:
    return {(i["seed"], i["day"], i["fact"]): i for r in rows if r["method"] == method and r["day"] in days
            for i in r["items"] if i["kind"] == kind}


def pooled_table(rows: list[dict], kind: str = "question") -> str:
    """Each figure pooled over the update days every chained method ran (day 0 excluded: it
    teaches, it does not update), with 95% intervals; then paired differences on the same probes
    (each chained method against the base model, and DiSC against each other method)."""
    merged = merged_by_day(rows)
    chained = [m for m in sorted({r["method"] for r in merged}, key=_method_order) if _chained(m)]
    if not chained:
        return "(no chained lineage)"
    days = set.intersection(*({r["day"] for r in merged if r["method"] == m} for m in chained)) - {0}
    lines = [f"Pooled over days {', '.join(map(str, sorted(days)))}:", "",
             "| method | " + " | ".join(name for name, _, _ in POOLED) + " |", "|---|" + "---|" * len(POOLED)]
    for method in ["base"] + chained:
        probes = _by_probe(merged, method, kind, days).values()
        cells = []
        for _, pick, field in POOLED:
            figure = _figure([i[field] for i in probes if pick(i)])
            cells.append(f"{_cell(figure)} (n={figure['n']})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    pairs = [(m, "base") for m in chained] + [("disc", m) for m in chained if m != "disc" and "disc" in chained]
    lines += ["", "| difference (points) | " + " | ".join(name for name, _, _ in POOLED) + " |",
              "|---|" + "---|" * len(POOLED)]
    for a, b in pairs:
        first, second = _by_probe(merged, a, kind, days), _by_probe(merged, b, kind, days)
        cells = []
        for _, pick, field in POOLED:
            diffs = [float(first[k][field] - second[k][field]) for k in first if k in second and pick(first[k])]
            if not diffs:
                cells.append("—")
                continue
            low, high = bootstrap_interval(diffs)
            cells.append(f"{100 * sum(diffs) / len(diffs):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(figure: dict) -> str:
    if figure["value"] is None:
        return "—"
    low, high = figure["ci"]
    return f"{100 * figure['value']:.0f} [{100 * low:.0f}, {100 * high:.0f}]"


def summary_table(rows: list[dict], kind: str = "question") -> str:
    """Per method and day: the five knowledge figures with intervals, and the drift figures."""
    lines = ["| method | day | latest | new | updated | untouched | stale rate | KL parent | KL base | "
             "format | state |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(merged_by_day(rows), key=lambda r: (_method_order(r["method"]), r["day"])):
        f = figures(row["items"], kind)
        scores = row.get("scores", {})
        lines.append(f"| {row['method']} | {row['day']} | {_cell(f['latest'])} | {_cell(f['new'])} | "
                     f"{_cell(f['updated'])} | {_cell(f['untouched'])} | {_cell(f['stale_rate'])} | "
                     f"{_num(scores.get('retention_kl_vs_parent'))} | {_num(scores.get('retention_kl_vs_base'))} | "
                     f"{_num(scores.get('format_compliance'))} | {row.get('state', '—')} |")
    return "\n".join(lines)


def policy_table(rows: list[dict]) -> str:
    """Which versions of each chained lineage (per chain seed) each promotion policy would hold back."""
    lines = ["| method | chain seed | " + " | ".join(name for name, _, _ in POLICIES) + " |",
             "|---|---|" + "---|" * len(POLICIES)]
    lineages = sorted({(r["method"], r["chain"]["seed"]) for r in rows if _chained(r["method"])},
                      key=lambda key: (_method_order(key[0]), key[1]))
    for method, seed in lineages:
        chain = sorted((r for r in rows if r["method"] == method and r["chain"]["seed"] == seed),
                       key=lambda r: r["day"])
        cells = []
        for _, parent_bound, base_bound in POLICIES:
            held = [str(r["day"]) for r in chain if not _passes(r["scores"], parent_bound, base_bound)]
            cells.append(("days " + ", ".join(held)) if held else "none")
        lines.append(f"| {method} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _passes(scores: dict, parent_bound: float, base_bound: float | None) -> bool:
    parent, base = scores.get("retention_kl_vs_parent"), scores.get("retention_kl_vs_base")
    if parent is None or parent > parent_bound:
        return False
    return base_bound is None or (base is not None and base <= base_bound)


def capacity_table(rows: list[dict], kind: str = "question") -> str:
    """After each chained lineage's last day: accuracy on the facts introduced on each day, with
    the gain over the base on the same probes (are the first days' facts kept, and are the last
    days' learned as well as the first were?)."""
    merged = merged_by_day(rows)
    chained = [m for m in sorted({r["method"] for r in merged}, key=_method_order) if _chained(m)]
    if not chained:
        return "(no chained lineage)"
    lasts = {m: max((r for r in merged if r["method"] == m), key=lambda r: r["day"]) for m in chained}
    days = range(max(r["day"] for r in lasts.values()) + 1)
    lines = ["| method | " + " | ".join(f"day {d}" for d in days) + " |", "|---|" + "---|" * len(days)]
    for method, last in lasts.items():
        mine = _by_probe(merged, method, kind, {last["day"]})
        base = _by_probe(merged, "base", kind, {last["day"]})
        cells = []
        for day in days:
            keys = [k for k, item in mine.items() if item["introduced_on"] == day]
            if not keys:
                cells.append("—")
                continue
            right = sum(mine[k]["correct"] for k in keys)
            paired = [k for k in keys if k in base]
            gain = (f" ({100 * sum(mine[k]['correct'] - base[k]['correct'] for k in paired) / len(paired):+.0f})"
                    if len(paired) == len(keys) else "")
            cells.append(f"{100 * right / len(keys):.0f}%{gain}, n={len(keys)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _chained(method: str) -> bool:
    """A lineage trained day by day (not the base model, not the retrain reference)."""
    return method != "base" and not method.startswith("retrain")


def _method_order(method: str) -> tuple[int, str]:
    order = ("base",) + CHAIN_METHODS
    name = method.partition("@")[0]
    return (2 * order.index(name) + ("@" in method) if name in order else 2 * len(order)), method


def plot(rows: list[dict], path: str, kind: str = "question") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("latest", "latest-value accuracy (all facts)"), ("new", "new facts of the day"),
              ("updated", "facts updated that day"), ("stale_rate", "stale rate (superseded value chosen)"),
              ("untouched", "untouched earlier facts"), ("kl_base", "KL to the base (chat replies)")]
    rows = merged_by_day(rows)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for axis, (key, title) in zip(axes.flat, panels):
        for method in sorted({r["method"] for r in rows}, key=_method_order):
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["day"])
            xs, ys, lows, highs = [], [], [], []
            for row in mine:
                if key == "kl_base":
                    value = 0.0 if method == "base" else row["scores"].get("retention_kl_vs_base")
                    interval = None
                else:
                    figure = figures(row["items"], kind)[key]
                    value, interval = figure["value"], figure["ci"]
                if value is None:
                    continue
                xs.append(row["day"])
                ys.append(value)
                lows.append(interval[0] if interval else value)
                highs.append(interval[1] if interval else value)
            if not xs:
                continue
            style = (dict(color="grey", linestyle=":") if method == "base" else
                     dict(marker="s", linestyle="--") if method.startswith("retrain") else dict(marker="o"))
            axis.plot(xs, ys, label=method, **style)
            if key != "kl_base":
                axis.fill_between(xs, lows, highs, alpha=0.12, color=axis.lines[-1].get_color())
        axis.set_title(title)
        axis.set_xlabel("day")
        axis.grid(alpha=0.3)
    axes.flat[0].legend()
    seeds = sorted({seed for r in rows for seed in r["seeds"]})
    fig.suptitle(f"A lineage over {max(r['day'] for r in rows)} days (chain seeds {seeds}; {kind} probes; "
                 f"bands: 95% bootstrap intervals over probes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summarize(paths: list[str], plot_path: str | None = None) -> str:
    rows = load_rows(paths)
    parts = ["Chat questions:", summary_table(rows, "question"), "", pooled_table(rows, "question"), "",
             "Clozes:", summary_table(rows, "cloze"), "", pooled_table(rows, "cloze"), "",
             "Versions each promotion policy would hold back:", policy_table(rows), "",
             "After the last day, accuracy on the facts introduced on each day (gain over the base):",
             capacity_table(rows)]
    if plot_path:
        plot(rows, plot_path)
        parts.append(f"\nplot: {plot_path}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(CHAIN_METHODS),
                        help=f"comma-separated, of {', '.join(CHAIN_METHODS)} (default: all); "
                             "METHOD@LR gives one its own learning rate, e.g. disc@3e-4")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small chain in minutes: {', '.join(f'{k} {v}' for k, v in QUICK.items())}")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--days", type=int, default=8, help="update days after day 0")
    parser.add_argument("--initial-entities", type=int, default=8)
    parser.add_argument("--new-entities-per-day", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: the product's")
    parser.add_argument("--finetune-lr", type=float, default=FINETUNE_LR, help="learning rate of sft and sft_kl")
    parser.add_argument("--retrain-days", default=None,
                        help="comma-separated days on which to run the retrain reference (default: every day)")
    parser.add_argument("--model", default=None, help="base model (default: the product's, SmolLM2-135M-Instruct)")
    parser.add_argument("--home", default=".disc/chain", help="the embedded service's folder (emptied first)")
    parser.add_argument("--out", default=None, help="append JSON lines here")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSONL",
                        help="print the tables of earlier runs instead of running")
    parser.add_argument("--plot", default=None, help="with --summarize: write the per-day plot here")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize, args.plot))
        return 0
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in args.methods:
        try:
            parse_method(method)
        except ValueError as exc:
            parser.error(str(exc))
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    # Stopped by a signal, still stop the service's worker and API (their own process groups).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.retrain_days = None if args.retrain_days is None else {int(d) for d in args.retrain_days.split(",")}
    rows = run_chain(args)
    print()
    print(summary_table(rows))
    print()
    print(policy_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
