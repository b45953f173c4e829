"""Cutting a model in two at a torchvision/FX node name.

A split point is a node name as torchvision's feature extraction reports it
(``layer1``, ``layer2.0``, ``features.3``); a module name stands for the last
node inside that module. A cut is valid when exactly one tensor crosses it, so
the device sends one tensor and the server needs nothing else:
``tail(head(x)) == model(x)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer

from splitnet.errors import UnknownSplitPointError


@dataclass
class _Traced:
    graph: fx.Graph
    root: nn.Module
    names: dict[fx.Node, str]  # node -> torchvision node name
    order: list[fx.Node]  # call nodes in execution order (no placeholders/outputs)


def _tracer_kwargs() -> dict:
    """The leaf modules and autowrapped functions torchvision's feature extraction uses."""
    try:
        from torchvision.models.feature_extraction import _set_default_tracer_kwargs

        return _set_default_tracer_kwargs(None)
    except (ImportError, TypeError):  # private helper moved: fall back to the essentials
        import math

        import torchvision

        return {"autowrap_modules": (math, torchvision.ops)}


_TRACE_LOCK = threading.Lock()  # FX tracing patches global state: one trace at a time per process


def _trace(model: nn.Module) -> _Traced:
    tracer = NodePathTracer(**_tracer_kwargs())
    with _TRACE_LOCK:
        was_training = model.training
        model.eval()
        graph = tracer.trace(model)
        model.train(was_training)
    names = dict(tracer.node_to_qualname)
    order = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
    return _Traced(graph, model, names, order)


def _single_tensor_cut(traced: _Traced, idx: int) -> bool:
    """True when only ``order[idx]`` is read by nodes after it (constants aside)."""
    before = set(traced.order[: idx + 1]) | {n for n in traced.graph.nodes if n.op == "placeholder"}
    cut = traced.order[idx]
    after = traced.order[idx + 1 :] + [n for n in traced.graph.nodes if n.op == "output"]
    if not traced.order[idx + 1 :]:
        return False  # nothing left for the tail
    for node in after:
        for inp in node.all_input_nodes:
            if inp in before and inp is not cut and inp.op != "get_attr":
                return False
    return True


def _resolve(traced: _Traced, node_name: str) -> int:
    """Index in execution order of the last node named ``node_name`` or inside module ``node_name``."""
    found = -1
    for i, node in enumerate(traced.order):
        name = traced.names.get(node, "")
        if name == node_name or name.startswith(node_name + "."):
            found = i
    if found < 0:
        raise UnknownSplitPointError(f"no node named {node_name!r} in {type(traced.root).__name__}")
    return found


def list_split_points(model: nn.Module, depth: int | None = 2) -> list[str]:
    """Node names where the model can be cut with one tensor crossing, in execution order.

    ``depth`` limits names to at most that many dot-separated parts (``layer1.0`` has 2);
    ``None`` lists every node. Names that denote the same node keep the shortest.
    """
    traced = _trace(model)
    candidates: dict[int, str] = {}
    for node in traced.order:
        full = traced.names.get(node, "")
        parts = full.split(".")
        for k in range(1, len(parts) + 1):
            name = ".".join(parts[:k])
            if depth is not None and k > depth:
                break
            idx = _resolve(traced, name)
            if idx not in candidates or len(name) < len(candidates[idx]):
                candidates[idx] = name
    return [candidates[i] for i in sorted(candidates) if _single_tensor_cut(traced, i)]


def _build(root: nn.Module, graph: fx.Graph, name: str) -> fx.GraphModule:
    module = fx.GraphModule(root, graph, name)
    module.graph.eliminate_dead_code()
    module.graph.lint()
    module.recompile()
    return module


def split_model(model: nn.Module, node: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """``(head, tail)`` with ``tail(head(x)) == model(x)``; both share the model's parameters.

    Raises :class:`UnknownSplitPointError` when ``node`` does not exist or more than
    one tensor would cross the cut there.
    """
    traced = _trace(model)
    idx = _resolve(traced, node)
    if not _single_tensor_cut(traced, idx):
        raise UnknownSplitPointError(
            f"cannot split {type(model).__name__} at {node!r}: more than one tensor crosses it "
            f"(valid points: {', '.join(list_split_points(model))})"
        )
    cut = traced.order[idx]
    keep_head = set(traced.order[: idx + 1])

    head_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in traced.graph.nodes:
        if n.op == "placeholder" or n in keep_head:
            env[n] = head_graph.node_copy(n, lambda a: env[a])
    head_graph.output(env[cut])

    tail_graph = fx.Graph()
    env = {cut: tail_graph.placeholder("features")}
    for n in traced.order[idx + 1 :]:
        for inp in n.all_input_nodes:
            if inp not in env and inp.op == "get_attr":
                env[inp] = tail_graph.node_copy(inp, lambda a: env[a])
        env[n] = tail_graph.node_copy(n, lambda a: env[a])
    out_node = next(n for n in traced.graph.nodes if n.op == "output")
    tail_graph.output(fx.node.map_arg(out_node.args[0], lambda a: env[a]))
    return _build(model, head_graph, "Head"), _build(model, tail_graph, "Tail")


@torch.no_grad()
def split_shape(model: nn.Module, node: str, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the tensor crossing the cut at ``node`` for an input of ``input_shape``."""
    head, _ = split_model(model, node)
    was_training = model.training
    model.eval()
    shape = tuple(head(torch.zeros(input_shape)).shape)
    model.train(was_training)
    return shape
