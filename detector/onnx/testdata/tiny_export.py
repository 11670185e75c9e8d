"""Exports a tiny convolutional network to ONNX with PyTorch, as Ultralytics'
exporter does (torch.onnx.export, then metadata_props), for TestTorchExport.

Usage: /usr/bin/python3 tiny_export.py OUT.onnx
"""
import sys

import onnx
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
        with torch.no_grad():
            # Known weights, which the test reads back.
            self.conv.weight.copy_(torch.arange(6 * 3 * 3 * 3, dtype=torch.float32).reshape(6, 3, 3, 3) / 100)
            self.conv.bias.copy_(torch.tensor([-1.0, 0.5, 0, 0, 0, 2]))

    def forward(self, x):
        return torch.sigmoid(self.conv(x)).view(1, 6, -1)


out = sys.argv[1]
torch.onnx.export(Tiny().eval(), torch.zeros(1, 3, 32, 64), out, opset_version=12,
                  input_names=["images"], output_names=["output0"], do_constant_folding=True)
model = onnx.load(out)
for key, value in {
    "description": "Ultralytics tiny model",
    "author": "Ultralytics",
    "stride": "32",
    "task": "detect",
    "batch": "1",
    "imgsz": "[32, 64]",
    "names": str({0: "person", 1: "o'clock", 2: 'say "hi"'}),
}.items():
    model.metadata_props.add(key=key, value=value)
onnx.save(model, out)
