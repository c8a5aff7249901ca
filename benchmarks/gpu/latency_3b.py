"""GPU latency of PosePredictor with a random model of Qwen2.5-VL-3B-Instruct's shape (no weights can be
downloaded; timing depends on shape, not values), against the memory-bandwidth bound of decoding.

Shape: language 36 layers, width 2048, 16 heads / 2 KV heads, MLP 11008, vocabulary 151936 (embeddings and head
untied, as in the checkpoint); vision 32 blocks, width 1280, MLP 3420, full attention in blocks 7/15/23/31,
window 112. bf16, SDPA attention, LoRA rank 16 on both sides (the qwen2.5-vl-3b preset). The tokenizer is the
tiny offline one; the embedding table is resized to the real vocabulary so the head costs what it costs.
Decoding budgets are the real answers' token lengths (as in benchmarks/model_latency.py).

    python3 benchmarks/gpu/latency_3b.py --out benchmarks/gpu_latency_3b.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from manipllm_ros import prompts as P
from manipllm_ros.model.build import AdaptedVLM, tiny_config
from manipllm_ros.model.config import ModelConfig, TinyBaseConfig
from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.model.processor import ManipProcessor
from manipllm_ros.model.tokenizer import build_tiny_tokenizer
from manipllm_ros.training.config import preset
from manipllm_ros.training.synthetic import synthetic_sample

SHAPE_3B = TinyBaseConfig(hidden_size=2048, num_layers=36, num_heads=16, num_kv_heads=2, intermediate_size=11008,
                          vision_hidden_size=1280, vision_depth=32, vision_heads=16, vision_intermediate_size=3420,
                          vocab_size=1024)  # fmt: skip
VOCAB_3B = 151936


def build_3b(width: int, height: int, attn: str, shape: TinyBaseConfig = SHAPE_3B, vocab: int = VOCAB_3B,
             device: str = "cuda") -> PosePredictor:
    base = preset("qwen2.5-vl-3b").model
    cfg: ModelConfig = base.model_copy(update={"base_path": None, "tiny": shape, "image_width": width,
                                               "image_height": height, "attn_implementation": attn})  # fmt: skip
    tok = build_tiny_tokenizer(shape.vocab_size)
    qcfg = tiny_config(cfg, tok)
    qcfg.vision_config.fullatt_block_indexes = [7, 15, 23, 31]
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(qcfg)
    torch.set_default_dtype(torch.float32)
    model.resize_token_embeddings(vocab)
    model.eval()
    return PosePredictor(AdaptedVLM(cfg, model, ManipProcessor(tok, width, height), "random 3B-shaped"))


def decode_ms_per_token(pred: PosePredictor, rgb, instruction: str, tokens: int, runs: int) -> float:
    """Marginal cost of one more generated token: (time at budget N+k - time at N) / k, prefill cancelled out."""
    cfg = pred.vlm.cfg
    out = {}
    for n in (8, 8 + tokens):
        pred.vlm.cfg = cfg.model_copy(update={"max_new_tokens_pose": n})
        pred.predict_batch([rgb], [instruction], chain_of_thought=False)
        ts = []
        for _ in range(runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            pred.predict_batch([rgb], [instruction], chain_of_thought=False)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        out[n] = statistics.median(ts)
        gen = statistics.mean(pred.last_generated_tokens)
        assert gen >= n, f"generation stopped early ({gen} < {n}): the per-token figure would be wrong"
    pred.vlm.cfg = cfg
    return (out[8 + tokens] - out[8]) / tokens * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true", help="a 2-layer shape on CPU: checks the script, times nothing")
    a = ap.parse_args()
    if a.smoke:
        global SHAPE_3B, VOCAB_3B
        SHAPE_3B = TinyBaseConfig(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=256,
                                  vision_hidden_size=64, vision_depth=32, vision_heads=2, vision_intermediate_size=64)
        VOCAB_3B = 4096
        torch.cuda.synchronize = lambda: None  # type: ignore[assignment]
        torch.cuda.max_memory_allocated = lambda: 0  # type: ignore[assignment]
        torch.cuda.get_device_properties = lambda i: type("D", (), {"name": "CPU (smoke)"})  # type: ignore
        torch.cuda.empty_cache = torch.cuda.reset_peak_memory_stats = lambda: None  # type: ignore[assignment]
    torch.backends.cuda.matmul.allow_tf32 = True
    lines = []
    dev = torch.cuda.get_device_properties(0)
    lines.append(f"# PosePredictor latency on {dev.name}, Qwen2.5-VL-3B shape (random bf16 weights)\n")
    lines.append(f"torch {torch.__version__}; medians of {a.runs} calls after a warm-up; greedy; decoding budget = "
                 "the real answers' token lengths; LoRA rank 16 (unmerged, as served).\n")
    rows = []
    for width, height in ((448, 336), (224, 168)):
        pred = build_3b(width, height, "sdpa", SHAPE_3B, VOCAB_3B, "cpu" if a.smoke else "cuda")
        n_lm = sum(p.numel() for n, p in pred.vlm.model.named_parameters()
                   if "visual" not in n and "lora_" not in n)  # fmt: skip
        n_all = sum(p.numel() for p in pred.vlm.model.parameters())
        s = synthetic_sample(0)
        pr = pred.vlm.processor
        ex = P.cot_example(s, model_size=(pr.image_width, pr.image_height))
        lc, lr, lp = (len(pr.answer_ids(t.answer)) for t in ex.turns)
        pred.vlm.cfg = pred.vlm.cfg.model_copy(update={"max_new_tokens_category": lc, "max_new_tokens_reasoning": lr,
                                                        "max_new_tokens_pose": lp})  # fmt: skip
        for bs in (1, 4):
            imgs = [synthetic_sample(i)["rgb"] for i in range(bs)]
            ins = [s["instruction"]] * bs
            for mode, cot in (("CoT", True), ("direct", False)):
                pred.predict_batch(imgs, ins, chain_of_thought=cot)
                ts = []
                for _ in range(a.runs):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    pred.predict_batch(imgs, ins, chain_of_thought=cot)
                    torch.cuda.synchronize()
                    ts.append((time.perf_counter() - t0) * 1e3)
                rows.append((f"{width}x{height}", pr.n_image_tokens, bs, mode, (lc + lr + lp) if cot else lp,
                             statistics.mean(pred.last_generated_tokens), statistics.median(ts), min(ts),
                             torch.cuda.max_memory_allocated() / 2**30))  # fmt: skip
                print(rows[-1], flush=True)
        per_tok = decode_ms_per_token(pred, synthetic_sample(0)["rgb"], s["instruction"], 32, a.runs)
        bytes_lm = n_lm * 2
        # Decoding one token reads every language weight once: bytes / HBM bandwidth is the floor.
        for bw_name, bw in (("3.35 TB/s (H100 SXM spec)", 3.35e12), ("3.0 TB/s (copy measured here)", 3.0e12)):
            rows.append((f"{width}x{height}", "", 1, f"bound at {bw_name}", "", "", bytes_lm / bw * 1e3, "", ""))
        rows.append((f"{width}x{height}", "", 1, "measured decode ms/token", "", "", per_tok, "", ""))
        print(f"params: all {n_all / 1e9:.2f} B, language (read per token) {n_lm / 1e9:.2f} B; "
              f"decode {per_tok:.2f} ms/token vs bound {bytes_lm / 3.35e12 * 1e3:.2f} ms", flush=True)
        lines_params = f"Parameters: {n_all / 1e9:.2f} B in all, {n_lm / 1e9:.2f} B in the language model (bf16: {bytes_lm / 1e9:.2f} GB read per decoded token)."
        del pred
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    lines.append(lines_params + "\n")
    lines.append("| model image | image tokens | batch | mode | token budget | tokens generated | median ms | min ms | peak GiB |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append("| " + " | ".join(f"{x:.1f}" if isinstance(x, float) else str(x) for x in r) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        open(a.out, "w").write(text)


if __name__ == "__main__":
    main()
