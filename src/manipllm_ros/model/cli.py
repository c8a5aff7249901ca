"""`manipllm train` and `manipllm predict`.

    manipllm train --preset tiny --data data/sim                 # or --config train.yaml, --synthetic 64
    torchrun --nproc_per_node 2 -m manipllm_ros.model.cli train --preset tiny --synthetic 16   # DDP (gloo on CPU)
    accelerate launch -m manipllm_ros.model.cli train --config train.yaml    # + an accelerate config for FSDP
    manipllm predict --checkpoint runs/tiny/final --image rgb.png --instruction "open the door of the microwave"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from manipllm_ros.training.config import TrainConfig, preset
    from manipllm_ros.training.trainer import train

    if args.config:
        cfg = TrainConfig.from_yaml(args.config)
    else:
        cfg = preset(args.preset)
    upd: dict = {}
    for key in ("output_dir", "max_steps", "batch_size", "grad_accum", "lr", "eval_every", "save_every"):
        if getattr(args, key) is not None:
            upd[key] = getattr(args, key)
    if args.no_resume:
        upd["resume"] = False
    data = cfg.data.model_copy(update={"path": args.data}) if args.data else cfg.data
    model = cfg.model
    if args.base_path:
        model = model.model_copy(update={"base_path": args.base_path})
    if args.device:
        model = model.model_copy(update={"device": args.device})
    cfg = TrainConfig.model_validate({**cfg.model_dump(), **upd, "data": data.model_dump(), "model": model.model_dump()})
    if args.dump_config:
        print(cfg.to_yaml())
        return 0
    train_s = val_s = None
    if args.synthetic:
        from manipllm_ros.training.data import prepare_samples
        from manipllm_ros.training.synthetic import synthetic_samples

        size = (cfg.model.image_width, cfg.model.image_height)
        train_s = prepare_samples(synthetic_samples(args.synthetic), size)
        val_s = prepare_samples(synthetic_samples(max(2, args.synthetic // 4), start=10_000, split="test_seen"), size)
    elif not cfg.data.path:
        print("manipllm train: give --data DIR (a simulated dataset), a config with data.path, or --synthetic N",
              file=sys.stderr)
        return 2
    result = train(cfg, train_s, val_s)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from manipllm_ros.model.policy import PosePredictor
    from manipllm_ros.prompts import PoseParseError

    pred = PosePredictor.load(args.checkpoint, device=args.device)
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    depth = K = None
    if args.depth:
        depth = (np.load(args.depth) if str(args.depth).endswith(".npy")
                 else np.asarray(Image.open(args.depth), dtype=np.float32) / 1000.0)  # 16-bit PNG in mm
    if args.intrinsics:
        fx, fy, cx, cy = args.intrinsics
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    try:
        r = pred.predict(rgb, args.instruction, chain_of_thought=not args.direct, depth=depth, K=K)
    except PoseParseError as e:
        print(str(e), file=sys.stderr)
        return 1
    except ValueError as e:  # e.g. an object-view checkpoint given no depth
        print(f"manipllm predict: {e} (--depth, --intrinsics)", file=sys.stderr)
        return 2
    print(json.dumps({
        "category": r.category, "reasoning": r.reasoning, "answer": r.answer, "pixel_uv": list(r.pixel),
        "up_cam": r.up.tolist(), "forward_cam": r.forward.tolist(), "timings_ms": r.timings,
        "adapter_version": r.adapter_version,
        "object_window": None if r.view is None else [r.view.x0, r.view.y0, r.view.width, r.view.height],
    }, indent=2))  # fmt: skip
    return 0


def register(subparsers) -> None:
    """Add `train` and `predict` to the `manipllm` command."""
    t = subparsers.add_parser("train", help="fine-tune the V/L adapters on the simulated dataset")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--preset", default="tiny", choices=["tiny", "small", "qwen2.5-vl-3b"], help="named preset")
    src.add_argument("--config", type=Path, help="YAML TrainConfig (see --dump-config)")
    t.add_argument("--data", help="dataset directory (overrides data.path)")
    t.add_argument("--synthetic", type=int, default=0, help="train on N toy samples instead (smoke test)")
    t.add_argument("--base-path", help="local Qwen2.5-VL checkpoint directory (overrides model.base_path)")
    t.add_argument("--device", help="cpu | cuda | auto")
    t.add_argument("--output-dir", dest="output_dir")
    t.add_argument("--max-steps", dest="max_steps", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--grad-accum", dest="grad_accum", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--eval-every", dest="eval_every", type=int)
    t.add_argument("--save-every", dest="save_every", type=int)
    t.add_argument("--no-resume", action="store_true", help="start fresh even if checkpoints exist")
    t.add_argument("--dump-config", action="store_true", help="print the resolved config as YAML and exit")
    t.set_defaults(func=_train)

    p = subparsers.add_parser("predict", help="predict a contact pose for one RGB image")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. runs/tiny/final)")
    p.add_argument("--image", required=True, help="RGB image file (PNG/JPEG)")
    p.add_argument("--instruction", required=True, help='e.g. "open the door of the microwave"')
    p.add_argument("--direct", action="store_true", help="pose prompt only (no chain of thought)")
    p.add_argument("--depth", help="aligned depth: .npy in metres or 16-bit PNG in millimetres (checkpoints that "
                   "look at the object's window, object_view, need it)")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="colour camera intrinsics, with --depth")
    p.add_argument("--device", help="cpu | cuda (default: the checkpoint's)")
    p.set_defaults(func=_predict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manipllm-model")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
