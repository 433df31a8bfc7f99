"""How fast is disc_loss, and does it agree with the per-split loop it replaces?

For documents of 10 sentences (~300 tokens) and 5 splits, on the default model with LoRA
(r=16, alpha=32, all linear layers; optionally also full fine-tuning), this prints:

* the median time of one training step (forward + backward) for ``disc_loss`` (one teacher
  forward per document, one student batch), ``disc_loss_reference`` (one teacher and one
  student forward per split) and one ``sft_loss`` step (cross-entropy on the same document);
* how closely the two DiSC implementations agree (relative difference of loss and gradient);
* the peak extra memory of one step. On CPU each method runs in a fresh subprocess that loads
  the model, resets the kernel's resident-set high-water mark (``/proc/self/clear_refs``), takes
  one step and reads ``VmHWM``: the figure is peak RSS during the step minus RSS before it. On
  CUDA it is ``torch.cuda.max_memory_allocated`` during the step minus the allocation before;
* how many teacher logit elements each implementation materialises as documents grow.

With ``--memory-sweep`` it prints only the peak extra memory of one whole step per method for
documents of the given lengths.

    .venv/bin/python benchmarks/engine_speed.py --repeats 7
    .venv/bin/python benchmarks/engine_speed.py --memory-sweep 128 512 1024 2048 4096
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from disc_engine.loss import disc_loss, disc_loss_reference, sft_loss  # noqa: E402
from disc_engine.models import DEFAULT_MODEL, load_model, load_tokenizer  # noqa: E402
from disc_engine.splitting import choose_split_indices, prepare_document  # noqa: E402

NUM_SPLITS = 5
SENTENCES_PER_DOCUMENT = 10
METHODS = ("disc_loss", "disc_loss_reference", "sft_loss")

# Invented facts, so no model has seen them; ~20-35 tokens each.
SENTENCE_POOL = [
    "The Varnholt harbour bridge, designed by engineer Mara Quell, opened to traffic on the third of March 2031.",
    "Its central span of 1,240 metres made it the longest suspension bridge in northern Europe when it opened.",
    "The project cost 2.8 billion euros, roughly forty percent more than the budget approved in 2024.",
    "Quell's design replaced the usual steel deck with a carbon-composite structure that weighs half as much.",
    "During the first week, more than 90,000 vehicles crossed the bridge, according to the port authority.",
    "Local fishermen had opposed the construction, arguing that the pylons would disturb the herring grounds.",
    "A compromise in 2027 moved the southern pylon 300 metres east and created a protected marine zone.",
    "The bridge also carries a tram line that links Varnholt's old town with the new airport on Skerra Island.",
    "Mayor Ilse Brandvik called the opening a turning point and promised free tram rides until the end of the year.",
    "Engineers will monitor the structure with 4,000 embedded sensors that report strain and vibration every second.",
    "The Orlen Institute announced on Tuesday that its fusion test reactor had run for eleven minutes "
    "without interruption.",
    "Physicist Tomas Ekwueme, who leads the programme, said the plasma stayed stable at 150 million degrees.",
    "The previous record, set by a Korean laboratory in 2029, was just under four minutes.",
    "Funding for the next phase, about 600 million dollars, will come from a consortium of nine universities.",
    "Critics noted that the reactor still consumed more energy than it produced during the run.",
    "The institute plans to publish the full measurements in the journal Plasma Frontiers next spring.",
    "In the small town of Lessingen, a bakery has been run by the same family since 1687.",
    "Its current owner, Greta Falkenrath, started selling a rye bread sweetened with birch syrup in 2030.",
    "The bread won the national craft prize last autumn, beating more than 2,000 entries from across the country.",
    "Tourists now queue for up to two hours on Saturdays, and the bakery has hired six new apprentices.",
    "Falkenrath refuses to open a second shop, saying the old wood-fired oven is what gives the bread its taste.",
    "The Kestrel-4 probe entered orbit around Saturn's moon Enceladus on the ninth of August 2032.",
    "Mission controllers in Darmstadt confirmed the engine burn lasted exactly 38 minutes and 12 seconds.",
    "The probe carries a mass spectrometer built to detect amino acids in the plumes of water vapour.",
    "Its first flyby through a plume is scheduled for October, at an altitude of only 25 kilometres.",
    "The chess federation of Merovia elected its first female president, Anouk Delacroix-Baptiste, in June.",
    "Delacroix-Baptiste, a former national champion, won 61 of the 97 votes cast by regional delegates.",
    "She promised to introduce chess lessons in every primary school of the country by 2035.",
    "The federation's budget will double next year thanks to a sponsorship deal with a shipping company.",
    "A new species of tree frog, Hyla aurantiaca, was described by biologists working in the Serra Vermelha hills.",
    "The frog is only 14 millimetres long and has bright orange skin that glows faintly under ultraviolet light.",
    "Researchers found it after recording an unfamiliar high-pitched call near a mountain stream at night.",
]


def build_documents(count: int, tokenizer, seed: int = 0) -> list[list[list[int]]]:
    """``count`` documents of 10 sentences, drawn from the pool without repetition inside one."""
    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        text = " ".join(rng.sample(SENTENCE_POOL, SENTENCES_PER_DOCUMENT))
        documents.append(prepare_document(text, tokenizer).sentence_ids)
    return documents


def build_student(model_name: str, mode: str, device: str):
    """(student, teacher): LoRA with the adapter-off teacher, or full FT with a frozen copy."""
    base = load_model(model_name, device=device)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        student = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                  lora_dropout=0.0, init_lora_weights=False))
        with torch.no_grad():  # a trained-looking adapter: small but not zero
            for name, param in student.named_parameters():
                if "lora_B" in name:
                    param.mul_(0.01)
        teacher = None
    else:
        teacher = copy.deepcopy(base).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        student = base
    student.train()
    return student, teacher


def step_fn(method: str, student, teacher, sentences, splits):
    flat = [token for sentence in sentences for token in sentence]
    if method == "disc_loss":
        return lambda: disc_loss(student, teacher, sentences, splits)
    if method == "disc_loss_reference":
        return lambda: disc_loss_reference(student, teacher, sentences, splits)
    return lambda: sft_loss(student, flat)


def timed_step(fn, student, device: str) -> tuple[float, float]:
    student.zero_grad(set_to_none=True)
    _sync(device)
    start = time.perf_counter()
    with _autocast(device):
        loss = fn()
    loss.backward()
    _sync(device)
    return time.perf_counter() - start, loss.item()


def _autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_times(student, teacher, documents, repeats: int, device: str, rng_seed: int = 0):
    rng = random.Random(rng_seed)
    plans = [(sentences, choose_split_indices(sentences, NUM_SPLITS, rng)) for sentences in documents]
    for sentences, splits in plans[:1]:  # warm-up: first calls allocate and pick kernels
        for method in METHODS:
            timed_step(step_fn(method, student, teacher, sentences, splits), student, device)
    times = {method: [] for method in METHODS}
    for _ in range(repeats):
        for sentences, splits in plans:
            for method in METHODS:  # interleaved, so that machine noise hits all methods alike
                elapsed, _ = timed_step(step_fn(method, student, teacher, sentences, splits), student, device)
                times[method].append(elapsed)
            print(f"  {len(times['sft_loss'])} steps of each method timed", file=sys.stderr, flush=True)
    return {method: statistics.median(values) for method, values in times.items()}, times


def measure_agreement(student, teacher, documents, device: str, rng_seed: int = 0):
    rng = random.Random(rng_seed)
    loss_diffs, grad_diffs = [], []
    for sentences in documents:
        splits = choose_split_indices(sentences, NUM_SPLITS, rng)
        results = []
        for method in ("disc_loss", "disc_loss_reference"):
            student.zero_grad(set_to_none=True)
            with _autocast(device):
                loss = step_fn(method, student, teacher, sentences, splits)()
            loss.backward()
            grad = torch.cat([p.grad.flatten().float() for p in student.parameters() if p.grad is not None])
            results.append((loss.detach().float(), grad))
        (fast, fast_grad), (ref, ref_grad) = results
        loss_diffs.append(((fast - ref).abs() / ref.abs()).item())
        grad_diffs.append((torch.linalg.vector_norm(fast_grad - ref_grad) / torch.linalg.vector_norm(ref_grad)).item())
    student.zero_grad(set_to_none=True)
    return max(loss_diffs), max(grad_diffs)


def _vm_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def memory_probe(args) -> dict:
    """One step of one method in this (fresh) process; peak extra memory in MiB."""
    torch.set_num_threads(2)
    tokenizer = load_tokenizer(args.model)
    student, teacher = build_student(args.model, args.mode, args.device)
    sentences = document_of_tokens(tokenizer, args.probe_tokens) if args.probe_tokens else \
        build_documents(1, tokenizer)[0]
    splits = choose_split_indices(sentences, NUM_SPLITS, random.Random(0))
    fn = step_fn(args.memory_probe, student, teacher, sentences, splits)
    gc.collect()
    if args.device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        timed_step(fn, student, args.device)
        return {"peak_extra_mib": (torch.cuda.max_memory_allocated() - before) / 2**20}
    before = _vm_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # high-water mark := current RSS
    timed_step(fn, student, args.device)
    return {"peak_extra_mib": (_vm_kib("VmHWM") - before) / 1024}


def document_of_tokens(tokenizer, tokens: int) -> list[list[int]]:
    """A document of about ``tokens`` tokens: pool sentences (repeating once the pool is used up)."""
    rng = random.Random(tokens)
    text, count = [], 0
    while count < tokens:
        sentence = rng.choice(SENTENCE_POOL)
        text.append(sentence)
        count += len(tokenizer(" " + sentence, add_special_tokens=False)["input_ids"])
    return prepare_document(" ".join(text), tokenizer).sentence_ids


def measure_memory(args, mode: str, tokens: int | None = None) -> dict[str, float]:
    peaks = {}
    for method in METHODS:
        command = [sys.executable, __file__, "--model", args.model, "--device", args.device,
                   "--mode", mode, "--memory-probe", method, *(["--probe-tokens", str(tokens)] if tokens else [])]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peaks[method] = json.loads(output.strip().splitlines()[-1])["peak_extra_mib"]
    return peaks


def measure_logit_scaling(model_name: str, tokenizer, device: str, sentence_counts=(5, 10, 20, 40)):
    """Teacher logit elements materialised per document, fast vs per-split loop."""
    student, teacher = build_student(model_name, "full", device)
    counted = {"elements": 0}
    hook = teacher.get_output_embeddings().register_forward_hook(
        lambda module, args, output: counted.__setitem__("elements", counted["elements"] + output.numel()))
    rows = []
    rng = random.Random(1)
    try:
        for count in sentence_counts:
            text = " ".join(rng.choice(SENTENCE_POOL) for _ in range(count))
            sentences = prepare_document(text, tokenizer).sentence_ids
            splits = choose_split_indices(sentences, NUM_SPLITS, random.Random(0))
            row = {"sentences": len(sentences), "tokens": sum(map(len, sentences)),
                   "suffix_positions": sum(len(sentences[i]) - 1 for i in splits)}
            for method in ("disc_loss", "disc_loss_reference"):
                counted["elements"] = 0
                with torch.no_grad(), _autocast(device):
                    step_fn(method, student, teacher, sentences, splits)()
                row[method] = counted["elements"]
            rows.append(row)
    finally:
        hook.remove()
    return rows, teacher.config.vocab_size


def run_mode(args, mode: str, tokenizer) -> None:
    student, teacher = build_student(args.model, mode, args.device)
    documents = build_documents(args.documents, tokenizer)
    tokens = [sum(map(len, d)) for d in documents]
    medians, _ = measure_times(student, teacher, documents, args.repeats, args.device)
    loss_diff, grad_diff = measure_agreement(student, teacher, documents, args.device)
    del student, teacher
    gc.collect()
    memory = measure_memory(args, mode)

    steps = args.repeats * len(documents)
    print(f"\n## {mode}: {len(documents)} documents of {SENTENCES_PER_DOCUMENT} sentences "
          f"({min(tokens)}-{max(tokens)} tokens), {NUM_SPLITS} splits, median of {steps} steps each")
    print("| method | median step (s) | vs disc_loss | peak extra memory (MiB) |")
    print("|---|---|---|---|")
    for method in METHODS:
        print(f"| {method} | {medians[method]:.3f} | {medians[method] / medians['disc_loss']:.2f}x "
              f"| {memory[method]:.0f} |")
    print(f"\ndisc_loss_reference / disc_loss = {medians['disc_loss_reference'] / medians['disc_loss']:.2f}x; "
          f"disc_loss / sft_loss = {medians['disc_loss'] / medians['sft_loss']:.2f}")
    print(f"max relative difference disc_loss vs reference: loss {loss_diff:.2e}, gradient {grad_diff:.2e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the documents")
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-ft", action="store_true", help="also benchmark full fine-tuning")
    parser.add_argument("--mode", default="lora", choices=("lora", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--probe-tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-sweep", type=int, nargs="*", metavar="TOKENS",
                        help="only the peak memory of one whole step per method, for documents of about "
                             "these many tokens (e.g. 128 512 1024 2048 4096)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    sys.stdout.reconfigure(line_buffering=True)

    if args.memory_probe:
        print(json.dumps(memory_probe(args)))
        return

    if args.memory_sweep:
        print(f"# peak extra memory of one whole step (forward + backward), {args.model}, LoRA, {args.device}, "
              f"{NUM_SPLITS} splits")
        print("| document tokens | " + " | ".join(f"{m} (MiB)" for m in METHODS) + " | loop / disc_loss |")
        print("|---|" + "---|" * (len(METHODS) + 1))
        for tokens in args.memory_sweep:
            peaks = measure_memory(args, "lora", tokens)
            print(f"| {tokens} | " + " | ".join(f"{peaks[m]:.0f}" for m in METHODS)
                  + f" | {peaks['disc_loss_reference'] / max(peaks['disc_loss'], 1e-9):.2f}x |")
        return

    tokenizer = load_tokenizer(args.model)
    print(f"# engine speed: {args.model} on {args.device}"
          f"{' (bf16 autocast)' if args.device == 'cuda' else ' (fp32, 2 threads)'}, torch {torch.__version__}")
    memory_note = ("peak RSS during one step minus RSS before it, one fresh process per method"
                   if args.device == "cpu"
                   else "torch.cuda.max_memory_allocated during one step minus allocated before")
    print(f"memory: {memory_note}")
    for mode in ("lora", "full") if args.full_ft else ("lora",):
        run_mode(args, mode, tokenizer)

    rows, vocab = measure_logit_scaling(args.model, tokenizer, args.device)
    print(f"\n## teacher logit elements materialised per document ({NUM_SPLITS} splits, vocabulary {vocab})")
    print("| sentences | tokens | suffix positions | disc_loss | disc_loss_reference | tokens x vocabulary |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['sentences']} | {row['tokens']} | {row['suffix_positions']} | {row['disc_loss']:,} "
              f"| {row['disc_loss_reference']:,} | {row['tokens'] * vocab:,} |")
    print("disc_loss keeps suffix positions x vocabulary; the per-split loop keeps every position of every "
          "split's input.")


if __name__ == "__main__":
    main()
