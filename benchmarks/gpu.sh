#!/usr/bin/env bash
# The engine's figures on a CUDA machine, in one short run (about 6 minutes on one GPU):
# documents/s and peak memory of disc_loss vs the per-split loop vs a LoRA fine-tuning step, bf16,
# on the default model and on a 0.5B-class model built here (random weights: speed and memory do
# not depend on their values), then the teacher cache's epoch ratio and several documents per step.
#
#   bash benchmarks/gpu.sh            # after `make install` (or with torch and requirements.txt installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH=$PWD
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true

HALF_B=${DISC_GPU_BENCH_DIR:-/tmp/disc-gpu-bench}/random-0.5b
"$PY" - "$HALF_B" <<'PY'
import sys
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
from disc_engine.models import DEFAULT_MODEL, load_tokenizer
target = Path(sys.argv[1])
if not (target / "config.json").exists():
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    # Qwen2.5-0.5B's shape with SmolLM2's tokenizer: 24 layers, hidden 896, 14 heads (2 KV).
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         max_position_embeddings=8192, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    print(f"built a {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M-parameter model at {target}")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
PY

echo "== default model (SmolLM2-135M-Instruct), LoRA, bf16"
timeout 150 "$PY" benchmarks/engine_speed.py --device cuda --documents 8 --repeats 5
echo "== 0.5B-class model, LoRA, bf16"
timeout 180 "$PY" benchmarks/engine_speed.py --device cuda --documents 8 --repeats 5 --model "$HALF_B"
echo "== teacher cache: epoch 2 vs epoch 1, default model"
timeout 120 "$PY" benchmarks/teacher_cache.py --documents 16
echo "== several documents per step, default model"
timeout 120 "$PY" benchmarks/documents_per_step.py --documents 32 --per-step 1 4 8 --device cuda
