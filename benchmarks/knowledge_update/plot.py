"""The figure: knowledge (probe accuracy) against retention, one line per method and
parameterization across learning rates, in the manner of the DiSC paper's Figure 2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

_COLORS = {"disc": "tab:blue", "sft": "tab:red", "sft_kl": "tab:orange"}
_STYLES = {"lora": ("-", "o"), "full": ("--", "s")}
_LABELS = {"lora": "LoRA", "full": "full", "disc": "DiSC", "disc_shuffled": "DiSC (shuffled)",
           "disc_anyorder": "DiSC (any order)", "sft": "FT", "sft_kl": "FT+KL"}

# (key, axis label, whether larger is better)
_PANELS = [
    ("format_compliance", "format compliance (%)", True),
    ("general_mc_accuracy", "general accuracy (%)", True),
    ("retention_kl_vs_base", "KL to base on its chat replies (axis inverted)", False),
]


def plot_figure(record: dict, path: Path) -> None:
    runs = [r for r in record["runs"] if not r["error"]]
    panels = [p for p in _PANELS if record["base"].get(p[0]) is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    base = record["base"]
    for ax, (key, label, higher_is_better) in zip(axes[0], panels):
        scale = 100 if higher_is_better else 1
        ax.scatter([100 * base["probe_accuracy"]], [scale * base[key]], marker="*", s=180,
                   color="black", zorder=5, label="base model")
        for parameterization in _STYLES:
            for method in _COLORS:
                line = sorted((r for r in runs if r["parameterization"] == parameterization
                               and r["method"] == method and r[key] is not None),
                              key=lambda r: r["learning_rate"])
                if not line:
                    continue
                style, marker = _STYLES[parameterization]
                xs = [100 * r["probe_accuracy_after"] for r in line]
                ys = [scale * r[key] for r in line]
                ax.plot(xs, ys, style, marker=marker, color=_COLORS[method],
                        label=f"{_LABELS.get(method, method)} ({_LABELS.get(parameterization, parameterization)})")
                for x, y, r in zip(xs, ys, line):
                    ax.annotate(f"{r['learning_rate']:g}", (x, y), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color=_COLORS[method])
        if not higher_is_better:
            # Retention grows upwards in every panel, as in the paper's figure; the base's KL to
            # itself (0, up to rounding) is the top.
            highest = max([r[key] for r in runs if r[key] is not None], default=0.0)
            ax.set_ylim(max(highest * 1.1, 1e-3), 0.0)
        ax.axvline(25, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("knowledge: probe accuracy (%)  (chance 25%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    settings = record["settings"]
    fig.suptitle(f"New knowledge vs. retained capabilities — {settings['model']}, "
                 f"{record['corpus']['documents']} documents, {settings['epochs']} epoch(s); "
                 "points labelled by learning rate", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
