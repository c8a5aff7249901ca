"""The multimodal LLM: a Qwen2.5-VL with a V-Adapter (LoRA on visual.blocks), an L-Adapter (LoRA on the language
layers) and a trainable projector (visual.merger).

- `config.ModelConfig`: which base (tiny random-init, or a local checkpoint by path), adapters, image size.
- `build.AdaptedVLM`: build/load/save, parameter groups, adapter save / hot swap / reset.
- `policy.PosePredictor`: what the pose service, TTA and evaluation call (predict, predict_batch, tta_step, ...).
- `generation.DecodeSession`: batched multi-turn greedy decoding with one KV cache (image encoded once).
- `constrained.PoseGrammar`: optional grammar-constrained decoding of the pose answer.
- `cli`: `manipllm train` and `manipllm predict`.
"""
