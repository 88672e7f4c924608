"""Saving a contract model the way the server loads it: frozen once, here, at conversion time.

torch.jit.freeze inlines the weights as constants and keeps `features` and `head`. Saving that
frozen module means the server loads one copy of the weights and only has to repack them for
oneDNN, instead of holding the scripted module, its frozen clone and the packed weights at once.
(optimize_for_inference's oneDNN constants cannot be serialised, so that step stays at load.)
The frozen `forward` is rewritten to call `features` and `head`, so each weight is stored once.
"""
import json
from pathlib import Path

import torch

CONTRACT = ("forward", "features", "head")


def forward_calls_features_and_head(frozen: torch.jit.ScriptModule) -> None:
    """Rewrite the frozen `forward` as `head(features(x))`. Freezing inlines both into `forward`,
    which then holds its own copy of every weight constant, and the server's oneDNN repacking
    would pack the convolutions twice (once for `forward`, once for `features`)."""
    g = frozen.forward.graph
    self_value, x = list(g.inputs())
    g.eraseOutput(0)
    for node in reversed(list(g.nodes())):
        node.destroy()
    value = x
    for method in ("features", "head"):
        call = g.create("prim::CallMethod", [self_value, value], 1)
        call.s_("name", method)
        call.output().setType(torch._C.TensorType.get())
        g.insertNode(call)
        value = call.output()
    g.registerOutput(value)


def save_frozen(scripted: torch.jit.ScriptModule, out: Path, meta: dict, check_input: torch.Tensor) -> None:
    """Freeze `scripted` (eval mode, no parameter needs grad), save it atomically to `out` with
    `meta` as mediscope.json, reload it and check that it computes what `scripted` does."""
    scripted.eval()
    for p in scripted.parameters():
        p.requires_grad_(False)
    frozen = torch.jit.freeze(scripted, preserved_attrs=["features", "head"])
    forward_calls_features_and_head(frozen)
    meta = dict(meta, frozen=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    torch.jit.save(frozen, str(tmp), _extra_files={"mediscope.json": json.dumps(meta)})
    tmp.replace(out)

    loaded = torch.jit.load(str(out))
    for name in CONTRACT:
        loaded._c._get_method(name)
    if len(list(loaded.parameters())) != 0:
        raise SystemExit(f"{out}: the saved module still has parameters (not frozen)")
    with torch.no_grad():
        want = scripted(check_input)
        a = loaded.features(check_input)
        d_split = float((loaded.head(a) - want).abs().max())
        d_forward = float((loaded(check_input) - want).abs().max())
    if d_split > 1e-4 or d_forward > 1e-4:
        raise SystemExit(f"{out}: frozen module differs from the scripted one ({d_split:.2e}, {d_forward:.2e})")
