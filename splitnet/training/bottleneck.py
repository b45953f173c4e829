"""Training a slimmable bottleneck at a split point by distillation from a frozen teacher.

Stage 1 (head distillation): the encoder/decoder learn to reproduce the teacher's
features at the split through the quantized latent, ``MSE(x_hat, f) + lambda * bits``,
summed over every width in each step (or one width per step, see ``widths_per_step``).
With ``encoder="light"`` the encoder takes the image instead of the teacher's features
(strided convolutions with GDN, a few percent of the model's MACs) and the decoder
learns to rebuild the teacher's features at the split. Stage 2 (optional): the decoder and a
copy of the tail (and, unless frozen, the encoder) are fine-tuned with a task loss against
the teacher's outputs plus the same rate term: for classifiers KD on the logits plus
cross-entropy, for detectors (``splitnet.detection.distill``) MSE on the output maps
plus the detection loss. A model without a stage-2 task (a torchvision detector, whose
outputs are post-processed boxes, nothing to distill on) trains stage 1 only
(:class:`HeadDistillationTask`, ``finetune_epochs=0``); its per-epoch holdout evaluation
reports the feature MSE and the bytes per width.

Any registered model can be the teacher: it is cut by FX, or by its registry entry's own
split function (:func:`splitnet.models.registry.split_registered`).

The loop is the same for every task; a :class:`DistillTask` supplies the batches, the
stage-2 loss and the per-width evaluation.

Scale of the rate weights: stage 1's MSE is a mean over every feature element, so one bit
is worth ``stage1_lmbda`` times the number of elements in squared error; for a light
encoder rebuilding 16x32x32 features, ``1e-5`` lets the latent carry what the decoder needs,
while ``1e-3`` made the rate win and left the rebuilt features useless to the tail (measured:
15 % top-1 through the tail after one epoch). Stage 2's loss is per image, so ``lmbda`` is
per bit per image directly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.checkpoint import SplitCheckpoint, SplitPoint
from splitnet.codecs import BottleneckCodec
from splitnet.data import ImageSet, augment, batches, load_npz, to_tensor
from splitnet.errors import CheckpointError, DataError, SplitnetError
from splitnet.models import ModelSpec, create_model, file_sha256, model_spec, read_checkpoint
from splitnet.models.registry import has_output_maps, split_registered
from splitnet.training.common import (
    load_run_state,
    save_atomic,
    seed_everything,
    split_holdout,
    to_device,
    training_device,
)


@dataclass
class BottleneckTrainConfig:
    """Hyper-parameters of one bottleneck run; stored in the checkpoint's metadata."""

    teacher: str = "resnet56_cifar"
    weights: str = ""  # teacher weights: a teacher file, third-party weights or a split checkpoint
    split: str = "layer2"
    data: str = "../shared/data/cifar10/train.npz"
    encoder: str = "features"  # "features": on the teacher's features at the split; "light": on the image
    latent_channels: int = 32
    hidden_channels: int = 64
    decoder_channels: int = 0  # light encoders: the server-side decoder's channels (0: hidden_channels)
    decoder_depth: int = 1  # light encoders: the decoder's 3x3 layers at the rebuilt features' resolution
    encoder_depth: int = 0  # light encoders: extra 3x3 conv + GDN layers at the latent's resolution (device)
    downsample: int = 1
    prior: str = "factorized"
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    stage1_lmbda: float = 1e-3  # weight of the rate in stage 1, per bit per image
    lmbda: float = 2e-3  # weight of the rate in stage 2
    epochs: int = 3  # stage 1
    finetune_epochs: int = 12  # stage 2; 0 skips it
    finetune_encoder: bool = True
    batch_size: int = 128
    lr: float = 2e-3
    finetune_lr: float = 5e-4
    tail_lr_scale: float = 1.0  # stage 2: the tail's learning rate is finetune_lr times this
    kd_temperature: float = 1.0
    ce_weight: float = 0.5
    holdout: int = 1000
    seed: int = 0
    limit: int | None = None
    width_rate_scale: tuple[float, ...] = field(default_factory=tuple)  # optional per-width lambda factors
    widths_per_step: int = 0  # 0: every width in every step; 1: the widest and one other width on alternate steps
    detection_images: int = 12000  # detectors: synthetic training scenes generated from ``data``
    out_relu: bool | None = None  # decoder ends in a ReLU; None: when the teacher's features there are >= 0
    # a split checkpoint whose bottleneck (same shape) and tail at ``split`` start this run: trains on from a
    # finished run, e.g. a longer stage 2 (epochs=0) with a fresh schedule; "" starts from scratch
    init_from: str = ""
    # a split checkpoint whose encoder and entropy models (same encoder shape) at ``split`` start this run, with
    # a new decoder (e.g. deeper or wider: it runs on the server) and the teacher's tail; stage 1 then trains
    # the decoder on the given latent with the encoder held fixed; "" starts from scratch
    init_encoder_from: str = ""
    # the split of ``init_encoder_from`` whose encoder starts this run ("": ``split``); a light encoder trained
    # for one node can start a run that rebuilds another (e.g. the layer1 encoder for a layer2 decoder)
    init_encoder_split: str = ""
    # where the training computes: "auto" (a CUDA GPU when there is one), "cpu", "cuda", "cuda:N"; the per-epoch
    # holdout evaluation (real entropy coding) and every saved file are on the CPU. Not part of the run's settings
    # for resuming: a run may go on on another device
    device: str = "auto"


class DistillTask(Protocol):
    """What the distillation loop needs to know about a task (classification, detection)."""

    size: int  # training examples
    score_key: str  # the evaluation figure per width: "top1", "map_50", "feature_mse"
    has_stage2: bool  # whether :meth:`loss` exists (stage 2 can run)

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Any]:
        """Model inputs (augmented) and whatever :meth:`loss` needs for examples ``idx``."""

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, extra: Any) -> torch.Tensor:
        """Stage-2 task loss of the student's output against the teacher's."""

    def evaluate(self, head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module) -> list[dict]:
        """Per width: ``{"width", score_key, "bytes_mean"}`` on the holdout, real coded bytes."""


class ClassificationTask:
    """CIFAR-style classification: crop+flip augmentation, KD + cross-entropy, top-1."""

    score_key = "top1"
    has_stage2 = True

    def __init__(self, cfg: BottleneckTrainConfig, data: ImageSet, spec: ModelSpec) -> None:
        self.cfg, self.spec = cfg, spec
        self.train, self.held = split_holdout(data, min(cfg.holdout, len(data) // 10), cfg.seed)
        self.images = to_tensor(self.train.images, spec)
        self.labels = torch.as_tensor(self.train.labels)
        self.size = len(self.train)

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(self.images[idx], gen), self.labels[idx]

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return _kd_loss(student, teacher, self.cfg.kd_temperature) + self.cfg.ce_weight * F.cross_entropy(
            student, labels)

    def evaluate(self, head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module) -> list[dict]:
        return evaluate_bottleneck(head, bottleneck, tail, self.held, self.spec)


class HeadDistillationTask:
    """Stage 1 only, for a model without a stage-2 task (a torchvision detector: its outputs are
    post-processed boxes). Images of an npz at the model's input size (labels unused), crop+flip
    augmentation; per width on the holdout: MSE of the rebuilt features against the teacher's
    (``feature_mse``) and the real coded bytes per image."""

    score_key = "feature_mse"
    has_stage2 = False

    def __init__(self, cfg: BottleneckTrainConfig, data: ImageSet, spec: ModelSpec, teacher_head: nn.Module) -> None:
        if tuple(data.images.shape[1:3]) != tuple(spec.input_size):
            raise DataError(f"{cfg.data}: {spec.name} takes {spec.input_size[0]}x{spec.input_size[1]} images, "
                            f"got {data.images.shape[1]}x{data.images.shape[2]}")
        self.cfg, self.spec, self.teacher_head = cfg, spec, teacher_head
        self.train, self.held = split_holdout(data, min(cfg.holdout, len(data) // 10), cfg.seed)
        self.images = to_tensor(self.train.images, spec)
        self.size = len(self.train)

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, None]:
        return augment(self.images[idx], gen), None

    def loss(self, student: Any, teacher: Any, extra: Any) -> torch.Tensor:
        raise SplitnetError(f"{self.spec.name} has no stage-2 task")

    @torch.no_grad()
    def evaluate(self, head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module) -> list[dict]:
        return evaluate_feature_mse(head, self.teacher_head, bottleneck, self.held, self.spec)


def task_kind(name: str) -> str:
    """The distillation task of registered model ``name``: ``"classification"``, ``"detection"``
    (a detector with raw output maps: stage 2 on them) or ``"features"`` (stage 1 only)."""
    spec = model_spec(name)
    if not spec.is_detector:
        return "classification"
    return "detection" if has_output_maps(name) else "features"


def make_task(cfg: BottleneckTrainConfig, teacher_head: nn.Module | None = None) -> DistillTask:
    """The task of ``cfg.teacher``: detection for registered detectors with raw output maps,
    head distillation only for other detectors (needs ``teacher_head``), classification otherwise."""
    spec = model_spec(cfg.teacher)
    kind = task_kind(cfg.teacher)
    if kind == "detection":
        from splitnet.detection.distill import DetectionTask

        return DetectionTask(cfg, spec)
    if kind == "features":
        if teacher_head is None:
            raise SplitnetError(f"head distillation for {cfg.teacher} needs the teacher's head")
        return HeadDistillationTask(cfg, load_npz(cfg.data, limit=cfg.limit), spec, teacher_head)
    return ClassificationTask(cfg, load_npz(cfg.data, limit=cfg.limit), spec)


def check_stages(cfg: BottleneckTrainConfig) -> None:
    """Raise :class:`SplitnetError` when ``cfg`` asks for a stage the teacher's task does not have, for two
    starting points, or for a training device this machine does not have."""
    training_device(cfg.device)
    if cfg.init_from and cfg.init_encoder_from:
        raise CheckpointError("give init_from (bottleneck and tail) or init_encoder_from (encoder only), not both")
    if cfg.init_encoder_split and not cfg.init_encoder_from:
        raise CheckpointError("init_encoder_split names a split of init_encoder_from; give init_encoder_from too")
    if cfg.finetune_epochs > 0 and task_kind(cfg.teacher) == "features":
        raise SplitnetError(f"{cfg.teacher} has no stage-2 task (its outputs are post-processed detections, "
                            "nothing to distill on): train stage 1 only (--finetune-epochs 0)")


def _load_teacher(cfg: BottleneckTrainConfig) -> tuple[nn.Module, SplitCheckpoint | None, dict]:
    """The teacher model, the split checkpoint the weights came from (if they did), and what is known of it."""
    obj = read_checkpoint(cfg.weights)
    if obj.get("format") == "splitnet-checkpoint":
        ckpt = SplitCheckpoint.load(cfg.weights)
        if ckpt.model_name != cfg.teacher:
            raise CheckpointError(f"{cfg.weights} holds {ckpt.model_name}, not {cfg.teacher}")
        return ckpt.teacher, ckpt, dict(ckpt.meta.get("teacher", {}))
    info = {"weights": str(cfg.weights), "weights_sha256": file_sha256(cfg.weights)}
    info.update({k: obj[k] for k in ("config", "command", "holdout_top1") if k in obj})
    return create_model(cfg.teacher, weights=cfg.weights), None, info


def _rate_bits(likelihoods: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    """Bits per image the entropy models assign to the latent(s)."""
    return sum(torch.log(lik).sum() for lik in likelihoods.values()) / (-math.log(2) * n)


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def _cosine(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


def _split_params(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    main = [p for n, p in module.named_parameters() if not n.endswith("quantiles") and p.requires_grad]
    aux = [p for n, p in module.named_parameters() if n.endswith("quantiles")]
    return main, aux


@torch.no_grad()
def evaluate_bottleneck(head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module,
                        data: ImageSet, spec, batch_size: int = 250) -> list[dict]:
    """Top-1 and real coded bytes per image for every width (bottleneck must be updated)."""
    bottleneck.eval()
    tail.eval()
    feats = [head(to_tensor(data.images[s], spec)) for s in batches(len(data), batch_size)]
    rows = []
    for w in bottleneck.widths:
        bottleneck.set_width(w)
        codec = BottleneckCodec(bottleneck)
        correct, sizes = 0, []
        for s, f in zip(batches(len(data), batch_size), feats):
            blobs = codec.encode_batch(f)
            sizes += [len(b) for b in blobs]
            logits = tail(codec.decode_batch(blobs, f.shape[1:]))
            correct += int((logits.argmax(1).numpy() == data.labels[s]).sum())
        rows.append({"width": w, "top1": correct / len(data), "bytes_mean": float(np.mean(sizes))})
    return rows


@torch.no_grad()
def evaluate_feature_mse(head: nn.Module, teacher_head: nn.Module, bottleneck: SlimmableBottleneck,
                         data: ImageSet, spec: ModelSpec, batch_size: int = 50) -> list[dict]:
    """Per width: MSE between the decoded features and the teacher's at the split, and real
    coded bytes per image (bottleneck must be updated). ``head`` is what the encoder takes
    (the teacher's head, or identity for a light encoder)."""
    bottleneck.eval()
    inputs = [to_tensor(data.images[s], spec) for s in batches(len(data), batch_size)]
    targets = [teacher_head(x) for x in inputs]
    enc_in = [head(x) for x in inputs]
    rows = []
    for w in bottleneck.widths:
        bottleneck.set_width(w)
        codec = BottleneckCodec(bottleneck)
        sq_err, count, sizes = 0.0, 0, []
        for x, f in zip(enc_in, targets):
            blobs = codec.encode_batch(x)
            sizes += [len(b) for b in blobs]
            x_hat = codec.decode_batch(blobs, x.shape[1:])[:, :, : f.shape[2], : f.shape[3]]
            sq_err += float(((x_hat - f) ** 2).sum())
            count += f.numel()
        rows.append({"width": w, "feature_mse": sq_err / max(1, count),
                     "bytes_mean": float(np.mean(sizes)) if sizes else float("nan")})
    return rows


def train_bottleneck(cfg: BottleneckTrainConfig, out: str | Path, work_dir: str | Path | None = None,
                     command: str = "") -> dict:
    """Train a bottleneck at ``cfg.split`` and add it to the split checkpoint ``out``.

    If ``out`` exists it must hold the same teacher; the split is added or replaced.
    Progress is checkpointed to ``work_dir`` after every epoch and resumed from there.
    Raises :class:`SplitnetError` when stage 2 is asked of a model without a stage-2 task.
    """
    check_stages(cfg)
    out = Path(out)
    work = Path(work_dir) if work_dir else out.parent / f"{out.stem}.{cfg.split}.work"
    last = work / "last.pt"
    gen = seed_everything(cfg.seed)
    teacher, source_ckpt, teacher_info = _load_teacher(cfg)
    teacher.eval().requires_grad_(False)
    head, teacher_tail = split_registered(cfg.teacher, teacher, cfg.split)
    task = make_task(cfg, head)
    if cfg.finetune_epochs > 0 and not task.has_stage2:
        raise SplitnetError(f"{cfg.teacher}'s task has no stage 2: use finetune_epochs=0")
    if task.size < 1:
        raise DataError(f"{cfg.data}: no training images left after the holdout")

    with torch.no_grad():
        x0 = task.batch(torch.arange(min(2, task.size)), torch.Generator().manual_seed(0))[0]
        f0 = head(x0)
    out_relu = cfg.out_relu if cfg.out_relu is not None else bool((f0 >= 0).all())
    bcfg = bottleneck_config(cfg, tuple(x0.shape[1:]), tuple(f0.shape[1:]), out_relu=out_relu)
    bottleneck = SlimmableBottleneck(bcfg)
    enc_input: nn.Module = nn.Identity() if bcfg.is_light else head  # what the encoder takes
    student_model = copy.deepcopy(teacher)
    _, tail = split_registered(cfg.teacher, student_model, cfg.split)
    tail.requires_grad_(False)
    device = training_device(cfg.device)
    _move(device, teacher, student_model, head, teacher_tail, tail, bottleneck)
    if cfg.widths_per_step not in (0, 1):
        raise CheckpointError(f"widths_per_step is 0 (every width each step) or 1 (alternate), "
                              f"got {cfg.widths_per_step}")
    rate_scale = tuple(cfg.width_rate_scale) or (1.0,) * len(bcfg.widths)
    if len(rate_scale) != len(bcfg.widths):
        raise CheckpointError(f"width_rate_scale needs one factor per width {list(bcfg.widths)}, got {rate_scale}")

    steps_per_epoch = math.ceil(task.size / cfg.batch_size)
    total_epochs = cfg.epochs + cfg.finetune_epochs
    history: list[dict] = []
    start_epoch = 0

    def optimizers(stage: int) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        if stage == 1:  # an encoder taken from a finished run stays as it is while its new decoder learns
            bottleneck.g_a.requires_grad_(not cfg.init_encoder_from)
        else:
            bottleneck.g_a.requires_grad_(cfg.finetune_encoder)
            tail.requires_grad_(True)
        main, aux = _split_params(bottleneck)
        lr = cfg.lr if stage == 1 else cfg.finetune_lr
        groups = [{"params": main, "lr": lr, "lr_scale": 1.0}]
        if stage == 2:  # the pretrained tail may learn more gently than the new encoder and decoder
            groups.append({"params": list(tail.parameters()), "lr": lr * cfg.tail_lr_scale,
                           "lr_scale": cfg.tail_lr_scale})
        return torch.optim.Adam(groups), torch.optim.Adam(aux, lr=1e-3)

    stage = 1 if cfg.epochs > 0 else 2
    opt, aux_opt = optimizers(stage)
    state = load_run_state(last, _config_dict(cfg))
    if cfg.init_from and state is None:
        _init_from_checkpoint(cfg, bottleneck, tail)
    if cfg.init_encoder_from and state is None:
        _init_encoder_from_checkpoint(cfg, bottleneck)
    if state is not None:
        start_epoch, history = int(state["epoch"]), list(state["history"])
        stage = 1 if start_epoch < cfg.epochs else 2
        opt, aux_opt = optimizers(stage)
        bottleneck.load_state_dict(state["bottleneck"])
        tail.load_state_dict(state["tail"])
        opt.load_state_dict(state["optimizer"])
        aux_opt.load_state_dict(state["aux_optimizer"])
        gen.set_state(state["generator"])

    for epoch in range(start_epoch, total_epochs):
        if epoch == cfg.epochs and stage == 1:
            stage = 2
            opt, aux_opt = optimizers(2)
        stage_epoch = epoch if stage == 1 else epoch - cfg.epochs
        stage_epochs = cfg.epochs if stage == 1 else cfg.finetune_epochs
        base_lr = cfg.lr if stage == 1 else cfg.finetune_lr
        bottleneck.train()
        tail.eval()  # the tail's BatchNorm statistics stay the teacher's
        order = torch.randperm(task.size, generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"stage {stage} epoch {epoch + 1}/{total_epochs}", leave=False)
        sums = {"loss": 0.0, "bits": 0.0}
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = g.get("lr_scale", 1.0) * _cosine(stage_epoch * steps_per_epoch + i,
                                                           stage_epochs * steps_per_epoch, base_lr)
            x, extra = to_device(task.batch(idx, gen), device)
            with torch.no_grad():
                feats = head(x)
                t_logits = teacher_tail(feats) if stage == 2 else None
            enc_in = x if bcfg.is_light else feats  # what the encoder takes
            loss = torch.zeros((), device=device)
            bits_total = 0.0
            step_widths = _step_widths(bcfg.widths, cfg.widths_per_step, i, gen)
            for w, scale in zip(bcfg.widths, rate_scale):
                if w not in step_widths:
                    continue
                bottleneck.set_width(w)
                res = bottleneck(enc_in, decoder_input="noise" if stage == 1 else "ste")
                x_hat = res["x_hat"][:, :, : feats.shape[2], : feats.shape[3]]
                bits = _rate_bits(res["likelihoods"], len(idx))
                if stage == 1:
                    task_loss = F.mse_loss(x_hat, feats)
                else:
                    task_loss = task.loss(tail(x_hat), t_logits, extra)
                loss = loss + task_loss + (cfg.stage1_lmbda if stage == 1 else cfg.lmbda) * scale * bits
                bits_total += bits.item() * len(bcfg.widths) / len(step_widths)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            aux_opt.zero_grad(set_to_none=True)
            bottleneck.aux_loss().backward()
            aux_opt.step()
            sums["loss"] += loss.item()
            sums["bits"] += bits_total / len(bcfg.widths)
            bar.set_postfix(loss=f"{sums['loss'] / (i + 1):.4f}", bits=f"{sums['bits'] / (i + 1):.0f}")
        _move(torch.device("cpu"), head, tail, bottleneck)  # what the evaluation runs: entropy coding is on the CPU
        bottleneck.update(force=True)
        rows = task.evaluate(enc_input, bottleneck, tail)
        history.append({"epoch": epoch + 1, "stage": stage, "loss": sums["loss"] / steps_per_epoch,
                        "bits_mean": sums["bits"] / steps_per_epoch, "holdout": rows})
        tqdm.write(f"epoch {epoch + 1}/{total_epochs} (stage {stage}): loss {sums['loss'] / steps_per_epoch:.4f}; "
                   + "; ".join(f"w{r['width']:g}: {task.score_key} {r[task.score_key]:.4g} @ {r['bytes_mean']:.1f} B"
                               for r in rows))
        save_atomic({"bottleneck": bottleneck.state_dict(), "tail": tail.state_dict(), "optimizer": opt.state_dict(),
                     "aux_optimizer": aux_opt.state_dict(), "generator": gen.get_state(), "epoch": epoch + 1,
                     "history": history, "config": _config_dict(cfg)}, last)
        _move(device, head, tail, bottleneck)

    _move(torch.device("cpu"), teacher, student_model, head, teacher_tail, tail, bottleneck)
    bottleneck.update(force=True)
    bottleneck.eval()
    if out.is_file():
        ckpt = SplitCheckpoint.load(out)
        if ckpt.model_name != cfg.teacher or not _same_weights(ckpt.teacher, teacher):
            raise CheckpointError(f"{out} holds another teacher; write to a new file")
    elif source_ckpt is not None:
        ckpt = source_ckpt
    else:
        ckpt = SplitCheckpoint(cfg.teacher, teacher, meta={"teacher": teacher_info})
    ckpt.splits[cfg.split] = SplitPoint(cfg.split, bottleneck,
                                        tail.state_dict() if cfg.finetune_epochs > 0 else None)
    ckpt.meta.setdefault("bottlenecks", {})[cfg.split] = {"config": _config_dict(cfg), "command": command,
                                                          "history": history}
    sha = ckpt.save(out)
    return {"split": cfg.split, "sha256": sha, "holdout": history[-1]["holdout"] if history else []}


def _move(device: torch.device, *modules: nn.Module) -> None:
    """Every module (and so every part it shares with another) onto ``device`` (no copy where it is already)."""
    for module in modules:
        module.to(device)


def _split_to_start_from(path: str, cfg: BottleneckTrainConfig, node: str = "") -> SplitPoint:
    """The split at ``node`` (default ``cfg.split``) of the split checkpoint ``path`` (a run starts from it),
    which must hold ``cfg.teacher``."""
    node = node or cfg.split
    ckpt = SplitCheckpoint.load(path)
    if ckpt.model_name != cfg.teacher or node not in ckpt.splits:
        raise CheckpointError(f"{path} has no {cfg.teacher} split at {node!r} to start from "
                              f"(it holds {ckpt.model_name} with splits {', '.join(ckpt.splits) or 'none'})")
    return ckpt.splits[node]


def _init_from_checkpoint(cfg: BottleneckTrainConfig, bottleneck: SlimmableBottleneck, tail: nn.Module) -> None:
    """Load the bottleneck and the fine-tuned tail of ``cfg.init_from``'s split at ``cfg.split``; the shapes must
    be those this run builds."""
    point = _split_to_start_from(cfg.init_from, cfg)
    if point.bottleneck.config != bottleneck.config:
        raise CheckpointError(f"{cfg.init_from}'s bottleneck at {cfg.split} has another shape than this run's "
                              f"({point.bottleneck.config} vs {bottleneck.config}); give the same options")
    bottleneck.load_state_dict(point.bottleneck.state_dict())
    if point.tail_state is not None:
        tail.load_state_dict(point.tail_state)


ENCODER_SIDE = ("g_a.", "entropy.", "h_a.", "h_s.", "gaussian.")  # a bottleneck's parameters that go with its latent


def _init_encoder_from_checkpoint(cfg: BottleneckTrainConfig, bottleneck: SlimmableBottleneck) -> None:
    """Load the encoder and entropy models of ``cfg.init_encoder_from``'s split at ``cfg.init_encoder_split``
    (default ``cfg.split``); every shape but the decoder's must be this run's."""
    node = cfg.init_encoder_split or cfg.split
    theirs = _split_to_start_from(cfg.init_encoder_from, cfg, node).bottleneck
    decoder_only = ("decoder_channels", "decoder_depth", "out_relu", "out_channels", "upsample")
    mine_enc = {k: v for k, v in asdict(bottleneck.config).items() if k not in decoder_only}
    their_enc = {k: v for k, v in asdict(theirs.config).items() if k not in decoder_only}
    if mine_enc != their_enc:
        diff = ", ".join(f"{k} {their_enc[k]} vs {mine_enc[k]}" for k in mine_enc if mine_enc[k] != their_enc.get(k))
        raise CheckpointError(f"{cfg.init_encoder_from}'s encoder at {node} has another shape than this "
                              f"run's ({diff}); only the decoder may differ")
    state = {k: v for k, v in theirs.state_dict().items() if k.startswith(ENCODER_SIDE)}
    missing, unexpected = bottleneck.load_state_dict(state, strict=False)
    if unexpected or any(k.startswith(ENCODER_SIDE) for k in missing):
        raise CheckpointError(f"{cfg.init_encoder_from}'s encoder at {node} does not fit this run's: "
                              f"unexpected {unexpected}, missing {[k for k in missing if k.startswith(ENCODER_SIDE)]}")


def bottleneck_config(cfg: BottleneckTrainConfig, input_shape: tuple[int, ...],
                      feature_shape: tuple[int, ...], out_relu: bool = True) -> BottleneckConfig:
    """The bottleneck's shape for a run: on the features (C, H, W) at the split, or (light) on
    the image (3, H, W) with a decoder that rebuilds those features. ``out_relu``: the decoder
    ends in a ReLU (right for features that come out of one, wrong for MobileNet's linear
    bottlenecks, which can be negative)."""
    common = {"latent_channels": cfg.latent_channels, "hidden_channels": cfg.hidden_channels,
              "downsample": cfg.downsample, "widths": tuple(cfg.widths), "prior": cfg.prior, "out_relu": out_relu}
    if cfg.encoder != "light":
        return BottleneckConfig(in_channels=feature_shape[0], encoder=cfg.encoder, **common)
    stride = input_shape[1] / feature_shape[1]
    levels = round(math.log2(stride)) if stride >= 1 else -1
    if levels < 0 or 2 ** levels != stride or levels > cfg.downsample:
        raise CheckpointError(f"a light encoder with downsample {cfg.downsample} cannot rebuild features "
                              f"{tuple(feature_shape)} from an input {tuple(input_shape)}: the features' stride "
                              f"must be a power of two no larger than 2**downsample")
    return BottleneckConfig(in_channels=input_shape[0], out_channels=feature_shape[0], encoder="light",
                            upsample=cfg.downsample - levels, decoder_channels=cfg.decoder_channels,
                            decoder_depth=cfg.decoder_depth, encoder_depth=cfg.encoder_depth, **common)


def _step_widths(widths: tuple[float, ...], per_step: int, step: int, gen: torch.Generator) -> tuple[float, ...]:
    """The widths trained in one step: all of them (``per_step`` 0), or (1) the widest on even steps and a
    random other one on odd steps."""
    if per_step == 0 or len(widths) == 1:
        return widths
    if step % 2 == 0:
        return (widths[-1],)
    return (widths[int(torch.randint(len(widths) - 1, (1,), generator=gen))],)


def _config_dict(cfg: BottleneckTrainConfig) -> dict:
    d = asdict(cfg)
    d["widths"] = list(cfg.widths)
    d["width_rate_scale"] = list(cfg.width_rate_scale)
    if d["out_relu"] is None:  # the default: left out, so runs started before the option existed resume
        del d["out_relu"]
    if d["decoder_depth"] == 1:  # likewise
        del d["decoder_depth"]
    if d["encoder_depth"] == 0:  # likewise
        del d["encoder_depth"]
    del d["device"]  # where it computes is not a setting of the run: it may resume on another device
    return d


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
