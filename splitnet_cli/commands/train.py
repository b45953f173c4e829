"""``splitnet train teacher|bottleneck|detector|filter|policy``: parse, call the training loop, print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import (
    asset_path,
    fraction,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
)
from splitnet_cli.options import add_scenario_arguments, load_traces
from splitnet_cli.reports import command_line

SHARED_TRAIN = "../shared/data/cifar10/train.npz"


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a teacher or a bottleneck").add_subparsers(dest="what", required=True)
    _add_teacher(train)
    _add_bottleneck(train)
    _add_detector(train)
    _add_filter(train)
    _add_policy(train)


def _add_training_data(parser: argparse.ArgumentParser) -> None:
    """``--data`` of the teacher and the bottleneck (default: :data:`SHARED_TRAIN` beside a checkout)."""
    parser.add_argument("--data", type=asset_path, default=None,
                        help="npz or ImageFolder directory (default: the repository's CIFAR-10 "
                             "copy in ../shared, when run from a checkout)")


def _training_data(path: str | None) -> str:
    """``--data``, or the repository's CIFAR-10 training split when run from a checkout."""
    if path:
        return path
    if Path(SHARED_TRAIN).is_file():
        return SHARED_TRAIN
    raise SplitnetError(f"give --data (an npz or an ImageFolder directory); the default {SHARED_TRAIN} "
                        "exists only beside a repository checkout")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where training computes: auto (a CUDA GPU when there is one), cpu, cuda or cuda:N; "
                             "the holdout evaluation of each epoch and the saved files are on the CPU")


# ----------------------------------------------------------------- teacher
def _add_teacher(train: argparse._SubParsersAction) -> None:
    t = train.add_parser("teacher", help="train or fine-tune a CIFAR teacher on an npz training set")
    t.add_argument("--model", default="resnet56_cifar")
    _add_training_data(t)
    t.add_argument("--init-weights", default=None, help="fine-tune from these weights (default: from scratch)")
    t.add_argument("--epochs", type=positive_int, default=30)
    t.add_argument("--batch-size", type=positive_int, default=128)
    t.add_argument("--lr", type=positive_float, default=0.1)
    t.add_argument("--weight-decay", type=nonnegative_float, default=5e-4)
    t.add_argument("--warmup-epochs", type=nonnegative_float, default=0.0)
    t.add_argument("--label-smoothing", type=probability, default=0.0)
    t.add_argument("--holdout", type=nonnegative_int, default=1000, help="training images held out to monitor progress")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images")
    t.add_argument("--out", required=True)
    t.add_argument("--work-dir", default=None, help="resumable state (default: beside --out)")
    _add_device(t)
    t.set_defaults(func=run_teacher)


def run_teacher(args: argparse.Namespace) -> int:
    from splitnet.training.common import training_device
    from splitnet.training.teacher import TeacherConfig, train_teacher

    training_device(args.device)  # a GPU the machine lacks is refused before the data is looked for
    args.data = _training_data(args.data)

    cfg = TeacherConfig(model=args.model, data=args.data, init_weights=args.init_weights, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                        holdout=args.holdout, seed=args.seed, limit=args.limit, device=args.device)
    summary = train_teacher(cfg, args.out, args.work_dir, command=command_line())
    print(f"teacher written to {args.out}; holdout top-1 {summary['holdout_top1']:.4f}")
    return 0


# -------------------------------------------------------------- bottleneck
def _add_bottleneck(train: argparse._SubParsersAction) -> None:
    b = train.add_parser("bottleneck", help="train a slimmable bottleneck at a split point by distillation")
    b.add_argument("--teacher", default="resnet56_cifar", help="registered model name of the teacher")
    b.add_argument("--weights", required=True, help="teacher weights (teacher file, third-party, or checkpoint)")
    b.add_argument("--split", default="layer2", help="split node name, e.g. layer1")
    _add_training_data(b)
    b.add_argument("--encoder", choices=("features", "light"), default="features",
                   help="features: encoder on the teacher's features at --split (the device runs the teacher's "
                        "head); light: encoder on the image (strided convolutions + GDN, a few percent of the "
                        "model's MACs) whose decoder rebuilds the features at --split on the server")
    b.add_argument("--out-relu", action=argparse.BooleanOptionalAction, default=None,
                   help="end the decoder in a ReLU (default: when the teacher's features at --split are >= 0; "
                        "MobileNet's are not)")
    b.add_argument("--latent-channels", type=positive_int, default=32)
    b.add_argument("--hidden-channels", type=positive_int, default=64, help="encoder channels (slimmed with the width)")
    b.add_argument("--decoder-channels", type=nonnegative_int, default=0,
                   help="light encoder: the server-side decoder's channels, every width (0: --hidden-channels)")
    b.add_argument("--decoder-depth", type=positive_int, default=1,
                   help="light encoder: the decoder's 3x3 layers at the rebuilt features' resolution (default 1)")
    b.add_argument("--encoder-depth", type=nonnegative_int, default=0,
                   help="light encoder: extra 3x3 convolutions with GDN at the latent's resolution, on the device "
                        "(default 0)")
    b.add_argument("--widths-per-step", type=int, choices=(0, 1), default=0,
                   help="0: train every width in every step; 1: the widest and one random other width on "
                        "alternate steps (cheaper per epoch)")
    b.add_argument("--downsample", type=nonnegative_int, default=1, help="stride-2 stages in the encoder")
    b.add_argument("--prior", choices=("factorized", "hyperprior"), default="factorized")
    b.add_argument("--widths", type=fraction, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    b.add_argument("--stage1-lmbda", type=nonnegative_float, default=1e-3, help="stage-1 rate weight per bit per image")
    b.add_argument("--lmbda", type=nonnegative_float, default=2e-3, help="stage-2 rate weight per bit per image")
    b.add_argument("--width-rate-scale", type=positive_float, nargs="+", default=None,
                   help="per-width factors on the rate weight (one per width)")
    b.add_argument("--epochs", type=nonnegative_int, default=3, help="stage 1 (feature distillation) epochs")
    b.add_argument("--finetune-epochs", type=nonnegative_int, default=12,
                   help="stage 2 (KD fine-tuning) epochs; 0 skips (required for torchvision detectors: stage 1 only)")
    b.add_argument("--freeze-encoder", action="store_true", help="stage 2 trains only the decoder and tail")
    b.add_argument("--batch-size", type=positive_int, default=128)
    b.add_argument("--lr", type=positive_float, default=2e-3)
    b.add_argument("--finetune-lr", type=positive_float, default=5e-4)
    b.add_argument("--tail-lr-scale", type=positive_float, default=1.0,
                   help="stage 2: the pretrained tail learns at --finetune-lr times this (e.g. 0.1 when the tail "
                        "is most of the model)")
    b.add_argument("--kd-temperature", type=positive_float, default=1.0)
    b.add_argument("--ce-weight", type=nonnegative_float, default=0.5)
    b.add_argument("--holdout", type=nonnegative_int, default=1000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--limit", type=positive_int, default=None)
    b.add_argument("--detection-images", type=positive_int, default=12000,
                   help="detectors: synthetic training scenes built from --data")
    b.add_argument("--out", required=True, help="split checkpoint to create or add this split to")
    b.add_argument("--work-dir", default=None)
    b.add_argument("--init-from", type=asset_path, default="",
                   help="start from this split checkpoint's bottleneck and tail at --split (same options; e.g. "
                        "a longer stage 2 of a finished run with --epochs 0)")
    b.add_argument("--init-encoder-from", type=asset_path, default="",
                   help="start from this split checkpoint's encoder and entropy models at --split (same encoder "
                        "options) with a new decoder (e.g. another --decoder-channels / --decoder-depth) and the "
                        "teacher's tail; stage 1 holds the encoder fixed while the decoder learns")
    _add_device(b)
    b.add_argument("--init-encoder-split", default="",
                   help="the split of --init-encoder-from whose encoder starts this run (default: --split), e.g. "
                        "a light encoder trained to rebuild layer1 starting a run that rebuilds layer2")
    b.set_defaults(func=run_bottleneck)


def run_bottleneck(args: argparse.Namespace) -> int:
    import dataclasses

    from splitnet.training.bottleneck import BottleneckTrainConfig, check_stages, train_bottleneck

    cfg = BottleneckTrainConfig(
        teacher=args.teacher, weights=args.weights, split=args.split, data=args.data or "", encoder=args.encoder,
        latent_channels=args.latent_channels, hidden_channels=args.hidden_channels,
        decoder_channels=args.decoder_channels, decoder_depth=args.decoder_depth, encoder_depth=args.encoder_depth,
        downsample=args.downsample, widths_per_step=args.widths_per_step,
        prior=args.prior, widths=tuple(args.widths), stage1_lmbda=args.stage1_lmbda, lmbda=args.lmbda,
        width_rate_scale=tuple(args.width_rate_scale or ()), epochs=args.epochs,
        finetune_epochs=args.finetune_epochs, finetune_encoder=not args.freeze_encoder,
        batch_size=args.batch_size, lr=args.lr, finetune_lr=args.finetune_lr, tail_lr_scale=args.tail_lr_scale,
        kd_temperature=args.kd_temperature, ce_weight=args.ce_weight, holdout=args.holdout,
        seed=args.seed, limit=args.limit, detection_images=args.detection_images, out_relu=args.out_relu,
        init_from=args.init_from or "", init_encoder_from=args.init_encoder_from or "",
        init_encoder_split=args.init_encoder_split, device=args.device)
    check_stages(cfg)  # an impossible stage is refused before the data is looked for
    cfg = dataclasses.replace(cfg, data=_training_data(args.data))
    result = train_bottleneck(cfg, args.out, args.work_dir, command=command_line())
    print(f"bottleneck at {args.split} added to {args.out} (sha256 {result['sha256']})")
    for row in result["holdout"]:
        score = (f"top-1 {row['top1']:.4f}" if "top1" in row else f"mAP@0.5 {row['map_50']:.4f}" if "map_50" in row
                 else f"feature MSE {row['feature_mse']:.4g}")
        print(f"  w{row['width']:g}: holdout {score} at {row['bytes_mean']:.1f} bytes")
    return 0


# ---------------------------------------------------------------- detector
def _add_detector(train: argparse._SubParsersAction) -> None:
    td = train.add_parser("detector", help="train the small detector on synthetic scenes of CIFAR objects")
    td.add_argument("--data", type=asset_path, default=SHARED_TRAIN, help="object images (training split)")
    td.add_argument("--images", type=positive_int, default=12000, help="synthetic training scenes")
    td.add_argument("--size", type=positive_int, default=128, help="scene size, pixels")
    td.add_argument("--epochs", type=positive_int, default=24)
    td.add_argument("--batch-size", type=positive_int, default=64)
    td.add_argument("--lr", type=positive_float, default=2e-3)
    td.add_argument("--width", type=positive_int, default=32, help="channels of the first stage")
    td.add_argument("--seed", type=int, default=0)
    td.add_argument("--out", required=True)
    td.set_defaults(func=run_detector)


def run_detector(args: argparse.Namespace) -> int:
    from splitnet.detection.train import DetectorConfig, train_detector

    cfg = DetectorConfig(source=args.data, n_images=args.images, size=args.size, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, width=args.width, seed=args.seed)
    summary = train_detector(cfg, args.out, command=command_line())
    print(f"detector written to {args.out}; last epoch loss {summary['history'][-1]['loss']:.4f}")
    return 0


# ------------------------------------------------------------------ filter
def _add_filter(train: argparse._SubParsersAction) -> None:
    tf = train.add_parser("filter", help="train a detector checkpoint's object filter (no object: send nothing)")
    tf.add_argument("--checkpoint", type=asset_path, required=True, help="split checkpoint of a detector")
    tf.add_argument("--split", default="layer2")
    tf.add_argument("--data", type=asset_path, default=SHARED_TRAIN, help="object images (training split)")
    tf.add_argument("--scenes", type=positive_int, default=6000)
    tf.add_argument("--holdout", type=nonnegative_int, default=1000, help="scenes to set the threshold on")
    tf.add_argument("--epochs", type=positive_int, default=4)
    tf.add_argument("--max-dropped", type=probability, default=0.01,
                    help="largest share of frames with objects the filter may drop (sets the threshold)")
    tf.add_argument("--seed", type=int, default=2000)
    tf.add_argument("--out", default=None, help="write here (default: update --checkpoint)")
    tf.set_defaults(func=run_filter)


def run_filter(args: argparse.Namespace) -> int:
    from splitnet.training.filter import FilterTrainConfig, train_filter

    cfg = FilterTrainConfig(checkpoint=args.checkpoint, data=args.data, split=args.split, scenes=args.scenes,
                            holdout=args.holdout, epochs=args.epochs, max_dropped=args.max_dropped, seed=args.seed)
    sha, filt, rep = train_filter(cfg, args.out, command=command_line())
    print(f"object filter at {args.split} (threshold {filt.config.threshold:.3f}) written to "
          f"{args.out or args.checkpoint} (sha256 {sha})")
    print(f"  holdout: drops {rep.frames_filtered}/{rep.frames} frames ({rep.empty_frames_filtered}/"
          f"{rep.empty_frames} empty), misses {rep.objects_missed}/{rep.objects} objects")
    return 0


# ------------------------------------------------------------------ policy
def _add_policy(train: argparse._SubParsersAction) -> None:
    tp = train.add_parser("policy", help="train a PPO or DQN offloading policy on traces")
    add_scenario_arguments(tp, traces_default="train")
    tp.add_argument("--algo", choices=("ppo", "dqn"), default="ppo")
    tp.add_argument("--steps", type=positive_int, default=200_000)
    tp.add_argument("--keep-best-every", type=nonnegative_int, default=0, metavar="STEPS",
                    help="score the network on the training traces every STEPS steps and save the best one, "
                         "not the last (default: 0, off)")
    tp.add_argument("--keep-best-frames", type=positive_int, default=2000,
                    help="frames of each training trace that score (default: %(default)s)")
    tp.add_argument("--out", required=True)
    tp.set_defaults(func=run_policy)


def run_policy(args: argparse.Namespace) -> int:
    from policies.agents.rl import train_policy
    from policies.simulation.profile import Profile

    if args.traces == "eval":
        raise SplitnetError("the evaluation traces are held out: train on --traces train or your own traces")
    profile = Profile.load(args.profile)
    out = train_policy(profile, load_traces(args.traces), args.algo, args.steps, args.out, seed=args.seed,
                       fps=args.fps, deadline_ms=args.deadline_ms, keep_best_every=args.keep_best_every,
                       keep_best_frames=args.keep_best_frames)
    print(f"policy written to {out}")
    return 0
