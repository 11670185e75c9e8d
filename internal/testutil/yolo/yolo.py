#!/usr/bin/python3
# Copyright The camera_exporter Authors. Licensed under the Apache License 2.0.
"""Builds real YOLO networks for camera_exporter's tests, and their reference detections.

The networks follow the published architectures of the detectors users run:
YOLOv8 (C2f blocks, an anchor-free head with distribution focal loss boxes),
YOLO11 (C3k2 blocks, the C2PSA attention block, depthwise class branches) and
YOLOv5 (C3 blocks, an anchor-based head that decodes its grid in the graph).
This is our own code, written from the papers' and the model files'
descriptions; no Ultralytics code is used. Weights are seeded random values,
normalized and with class biases set so that a handful of boxes pass the
threshold on the picture the tests run them on. Each network is exported as `yolo export format=onnx`
exports: fused convolutions, input "images", output "output0", one batch,
static size, and Ultralytics' metadata.

    yolo.py build --out DIR --calibration JSON --coco-names FILE SPEC...
        writes DIR/SPEC.onnx for each SPEC, calibrated on the request of
        JSON for its input size ({"320": request, ...})
    yolo.py reference < requests.json
        prints, for each request, the detections of PyTorch's forward of the
        whole network, calibrated on the request's picture as it was built,
        decoded here, independently of the exporter

SPEC is FAMILY-oOPSET-ANCHORS-SIZE-cCLASSES[-WIDTH], e.g. yolov8-o12-folded-320-c80:
FAMILY yolov8, yolo11, yolov5 or yolov10 (its NMS-free head only, which the
exporter refuses); ANCHORS "folded" (constants, as a simplified
export leaves them) or "traced" (computed from the feature maps' shapes in the
graph); SIZE the square input; WIDTH the width multiplier in hundredths
(default 25, the "n" models).

A request is {"spec", "picture": a binary PPM of the placed picture,
"left", "top": where it sits in the input, "src_width", "src_height"}.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
from torch import nn

CONFIDENCE = 0.25  # the exporter's default confidence threshold
IOU = 0.45  # the exporter's default NMS threshold
PAD = 114  # letterbox gray
REG_MAX = 16  # bins of each box side's distribution (YOLOv8, YOLO11)

CUSTOM_NAMES = ["person", "helmet", "hi-vis vest"]


class Spec:
    def __init__(self, text):
        parts = text.split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"spec {text!r}: want FAMILY-oOPSET-ANCHORS-SIZE-cCLASSES[-WIDTH]")
        self.text = text
        self.family = parts[0]
        self.opset = int(parts[1].removeprefix("o"))
        self.anchors = parts[2]
        self.size = int(parts[3])
        self.classes = int(parts[4].removeprefix("c"))
        self.width = int(parts[5]) / 100 if len(parts) == 6 else 0.25
        if self.family not in ("yolov8", "yolo11", "yolov5", "yolov10"):
            raise ValueError(f"spec {text!r}: unknown family {self.family}")
        if self.anchors not in ("folded", "traced"):
            raise ValueError(f"spec {text!r}: anchors must be folded or traced")

    def names(self, coco):
        return coco if self.classes == 80 else CUSTOM_NAMES[: self.classes]

    def seed(self):
        # The weights depend on the architecture, not on how it is exported.
        key = f"{self.family}-{self.classes}-{self.width}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def channels(c, width):
    return max(8, int(math.ceil(c * width / 8) * 8))


class Conv(nn.Module):
    """A convolution with its batch normalization fused in, then SiLU."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=True)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.conv(x))


class DWConv(Conv):
    def __init__(self, c1, c2, k=1, s=1, act=True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), act=act)


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, k=(3, 3), e=0.5):
        super().__init__()
        c = int(c2 * e)
        self.cv1 = Conv(c1, c, k[0])
        self.cv2 = Conv(c, c2, k[1])
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Two halves; the second goes through n bottlenecks, each output kept.
    Split, not chunked, as exports split it: torch exports a chunk as shape
    arithmetic."""

    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True, e=0.5, k=((1, 3))):
        super().__init__()
        c = int(c2 * e)
        self.cv1 = Conv(c1, c, 1)
        self.cv2 = Conv(c1, c, 1)
        self.cv3 = Conv(2 * c, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c, c, shortcut, k=k, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(C2f):
    """C2f whose inner blocks are C3 blocks of 3x3 bottlenecks, or bottlenecks."""

    def __init__(self, c1, c2, n=1, c3k=False, e=0.5, shortcut=True):
        super().__init__(c1, c2, n, shortcut, e)
        self.m = nn.ModuleList(
            C3(self.c, self.c, 2, shortcut, k=(3, 3)) if c3k else Bottleneck(self.c, self.c, shortcut)
            for _ in range(n)
        )


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c = c1 // 2
        self.cv1 = Conv(c1, c, 1)
        self.cv2 = Conv(c * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the positions of a feature map."""

    def __init__(self, dim, heads, ratio=0.5):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.key_dim = int(self.head_dim * ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).view(b, self.heads, 2 * self.key_dim + self.head_dim, h * w).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2
        )
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.attn = Attention(c, heads)
        self.ffn = nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act=False))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    def __init__(self, c1, n=1):
        super().__init__()
        self.c = c1 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, max(1, self.c // 64)) for _ in range(n)))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class Up(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


def anchor_points(shapes, strides, device=None):
    """The centers of every feature map cell in input pixels' cell units, and their strides."""
    points, stride_column = [], []
    for (h, w), s in zip(shapes, strides):
        sx = torch.arange(end=w, dtype=torch.float32) + 0.5
        sy = torch.arange(end=h, dtype=torch.float32) + 0.5
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((xx, yy), -1).view(-1, 2))
        stride_column.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points).transpose(0, 1), torch.cat(stride_column).transpose(0, 1)


class DFLHead(nn.Module):
    """The anchor-free head of YOLOv8 and YOLO11: per cell, 4 distributions of
    REG_MAX bins (the distances to the box sides) and a logit per class."""

    def __init__(self, nc, ch, separable, traced, size):
        super().__init__()
        self.nc = nc
        self.strides = (8, 16, 32)
        self.traced = traced
        c2 = max(16, ch[0] // 4, REG_MAX * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * REG_MAX, 1)) for x in ch
        )
        if separable:
            self.cv3 = nn.ModuleList(
                nn.Sequential(
                    nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                    nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                    nn.Conv2d(c3, nc, 1),
                )
                for x in ch
            )
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
            )
        self.dfl = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float32).view(1, REG_MAX, 1, 1)
        shapes = [(size // s, size // s) for s in self.strides]
        points, strides = anchor_points(shapes, self.strides)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("stride_row", strides, persistent=False)

    def class_convs(self):
        return [seq[-1] for seq in self.cv3]

    def box_convs(self):
        return [seq[-1] for seq in self.cv2]

    def raw(self, xs):
        """The head's output before decoding: [1, 4*REG_MAX + nc, cells]."""
        b = xs[0].shape[0]
        ys = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        return torch.cat([y.view(b, 4 * REG_MAX + self.nc, -1) for y in ys], 2), ys

    def forward(self, xs):
        raw, ys = self.raw(xs)
        if self.traced:
            points, strides = anchor_points([y.shape[2:4] for y in ys], self.strides)
        else:
            points, strides = self.points, self.stride_row
        box, cls = raw.split((4 * REG_MAX, self.nc), 1)
        b, _, a = box.shape
        dist = self.dfl(box.view(b, 4, REG_MAX, a).transpose(2, 1).softmax(1)).view(b, 4, a)
        lt, rb = dist.chunk(2, 1)
        p = points.unsqueeze(0)
        x1y1, x2y2 = p - lt, p + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((xywh, cls.sigmoid()), 1)


class EndToEndHead(DFLHead):
    """YOLOv10's NMS-free head: the anchor-free head's decoded boxes and
    scores, then the TopK best cells, each with its best class: [1, K, 6]
    of x1, y1, x2, y2, score, class."""

    K = 300

    def forward(self, xs):
        y = super().forward(xs).transpose(1, 2)
        boxes, scores = y.split((4, self.nc), -1)
        k = min(self.K, y.shape[1])
        best, index = scores.amax(-1).topk(k)
        boxes = boxes.gather(1, index.unsqueeze(-1).repeat(1, 1, 4))
        scores = scores.gather(1, index.unsqueeze(-1).repeat(1, 1, self.nc))
        score, cls = scores.max(-1)
        xy, wh = boxes.split((2, 2), -1)
        return torch.cat((xy - wh / 2, xy + wh / 2, score.unsqueeze(-1), cls.unsqueeze(-1).float()), -1)


class AnchorHead(nn.Module):
    """YOLOv5's head: three anchors per cell, each cx, cy, w, h, objectness
    and class logits, decoded against the grid in the graph."""

    ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))

    def __init__(self, nc, ch, traced, size):
        super().__init__()
        self.nc, self.no, self.na = nc, nc + 5, 3
        self.strides = (8, 16, 32)
        self.traced = traced
        self.m = nn.ModuleList(nn.Conv2d(x, self.na * self.no, 1) for x in ch)
        self.grids, self.anchor_grids = [], []
        for i, s in enumerate(self.strides):
            g, a = self.grid(size // s, size // s, i)
            self.register_buffer(f"grid{i}", g, persistent=False)
            self.register_buffer(f"anchor_grid{i}", a, persistent=False)

    def grid(self, ny, nx, i):
        yv, xv = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32), indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(1, self.na, ny, nx, 2) - 0.5
        anchors = torch.tensor(self.ANCHORS[i], dtype=torch.float32).view(1, self.na, 1, 1, 2)
        return grid, anchors.expand(1, self.na, ny, nx, 2)

    def class_convs(self):
        return list(self.m)

    def forward(self, xs):
        z = []
        for i, x in enumerate(xs):
            x = self.m[i](x)
            b, _, ny, nx = x.shape
            x = x.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if self.traced:
                grid, anchor_grid = self.grid(ny, nx, i)
            else:
                grid, anchor_grid = getattr(self, f"grid{i}"), getattr(self, f"anchor_grid{i}")
            xy, wh, conf = x.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + grid) * self.strides[i]
            wh = (wh * 2) ** 2 * anchor_grid
            z.append(torch.cat((xy, wh, conf), 4).view(b, self.na * nx * ny, self.no))
        return torch.cat(z, 1)


class Net(nn.Module):
    """A backbone, a feature pyramid and a head, wired by layer index."""

    def __init__(self, layers, head_from, head):
        super().__init__()
        self.layers = nn.ModuleList(m for m, _ in layers)
        self.sources = [f for _, f in layers]
        self.head_from = head_from
        self.head = head

    def features(self, x):
        outs = []
        for m, f in zip(self.layers, self.sources):
            if isinstance(f, int):
                x = m(x if f == -1 else outs[f])
            else:
                x = m([x if j == -1 else outs[j] for j in f])
            outs.append(x)
        return [outs[i] for i in self.head_from]

    def forward(self, x):
        return self.head(self.features(x))


class Cat(nn.Module):
    def forward(self, xs):
        return torch.cat(xs, 1)


def yolov8(spec):
    c = lambda n: channels(n, spec.width)
    L = [
        (Conv(3, c(64), 3, 2), -1),  # 0
        (Conv(c(64), c(128), 3, 2), -1),
        (C2f(c(128), c(128), 1, True), -1),
        (Conv(c(128), c(256), 3, 2), -1),
        (C2f(c(256), c(256), 2, True), -1),  # 4, P3
        (Conv(c(256), c(512), 3, 2), -1),
        (C2f(c(512), c(512), 2, True), -1),  # 6, P4
        (Conv(c(512), c(1024), 3, 2), -1),
        (C2f(c(1024), c(1024), 1, True), -1),
        (SPPF(c(1024), c(1024)), -1),  # 9, P5
        (Up(), -1),
        (Cat(), [-1, 6]),
        (C2f(c(1024) + c(512), c(512), 1), -1),  # 12
        (Up(), -1),
        (Cat(), [-1, 4]),
        (C2f(c(512) + c(256), c(256), 1), -1),  # 15, out P3
        (Conv(c(256), c(256), 3, 2), -1),
        (Cat(), [-1, 12]),
        (C2f(c(256) + c(512), c(512), 1), -1),  # 18, out P4
        (Conv(c(512), c(512), 3, 2), -1),
        (Cat(), [-1, 9]),
        (C2f(c(512) + c(1024), c(1024), 1), -1),  # 21, out P5
    ]
    head = DFLHead(spec.classes, [c(256), c(512), c(1024)], False, spec.anchors == "traced", spec.size)
    return Net(L, [15, 18, 21], head)


def yolov10(spec):
    """YOLOv8's body under YOLOv10's NMS-free head, enough to show what
    OpenCV 4.6 cannot run."""
    net = yolov8(spec)
    c = lambda n: channels(n, spec.width)
    net.head = EndToEndHead(spec.classes, [c(256), c(512), c(1024)], True, spec.anchors == "traced", spec.size)
    return net


def yolo11(spec):
    c = lambda n: channels(n, spec.width)
    L = [
        (Conv(3, c(64), 3, 2), -1),  # 0
        (Conv(c(64), c(128), 3, 2), -1),
        (C3k2(c(128), c(256), 1, False, 0.25), -1),
        (Conv(c(256), c(256), 3, 2), -1),
        (C3k2(c(256), c(512), 1, False, 0.25), -1),  # 4, P3
        (Conv(c(512), c(512), 3, 2), -1),
        (C3k2(c(512), c(512), 1, True), -1),  # 6, P4
        (Conv(c(512), c(1024), 3, 2), -1),
        (C3k2(c(1024), c(1024), 1, True), -1),
        (SPPF(c(1024), c(1024)), -1),
        (C2PSA(c(1024)), -1),  # 10, P5
        (Up(), -1),
        (Cat(), [-1, 6]),
        (C3k2(c(1024) + c(512), c(512), 1, False), -1),  # 13
        (Up(), -1),
        (Cat(), [-1, 4]),
        (C3k2(c(512) + c(512), c(256), 1, False), -1),  # 16, out P3
        (Conv(c(256), c(256), 3, 2), -1),
        (Cat(), [-1, 13]),
        (C3k2(c(256) + c(512), c(512), 1, False), -1),  # 19, out P4
        (Conv(c(512), c(512), 3, 2), -1),
        (Cat(), [-1, 10]),
        (C3k2(c(512) + c(1024), c(1024), 1, True), -1),  # 22, out P5
    ]
    head = DFLHead(spec.classes, [c(256), c(512), c(1024)], True, spec.anchors == "traced", spec.size)
    return Net(L, [16, 19, 22], head)


def yolov5(spec):
    c = lambda n: channels(n, spec.width)
    L = [
        (Conv(3, c(64), 6, 2, 2), -1),  # 0
        (Conv(c(64), c(128), 3, 2), -1),
        (C3(c(128), c(128), 1), -1),
        (Conv(c(128), c(256), 3, 2), -1),
        (C3(c(256), c(256), 2), -1),  # 4, P3
        (Conv(c(256), c(512), 3, 2), -1),
        (C3(c(512), c(512), 3), -1),  # 6, P4
        (Conv(c(512), c(1024), 3, 2), -1),
        (C3(c(1024), c(1024), 1), -1),
        (SPPF(c(1024), c(1024)), -1),  # 9
        (Conv(c(1024), c(512), 1, 1), -1),  # 10
        (Up(), -1),
        (Cat(), [-1, 6]),
        (C3(c(1024), c(512), 1, False), -1),
        (Conv(c(512), c(256), 1, 1), -1),  # 14
        (Up(), -1),
        (Cat(), [-1, 4]),
        (C3(c(512), c(256), 1, False), -1),  # 17, out P3
        (Conv(c(256), c(256), 3, 2), -1),
        (Cat(), [-1, 14]),
        (C3(c(512), c(512), 1, False), -1),  # 20, out P4
        (Conv(c(512), c(512), 3, 2), -1),
        (Cat(), [-1, 10]),
        (C3(c(1024), c(1024), 1, False), -1),  # 23, out P5
    ]
    head = AnchorHead(spec.classes, [c(256), c(512), c(1024)], spec.anchors == "traced", spec.size)
    return Net(L, [17, 20, 23], head)


def placed(req, size):
    """The picture of a request placed in a size x size input as the
    exporter places it: at (left, top), the rest gray; a float tensor
    [1, 3, size, size], RGB, 0..1."""
    pic = read_ppm(req["picture"])  # RGB, as PPM stores it
    ph, pw = pic.shape[:2]
    canvas = np.full((size, size, 3), PAD, np.uint8)
    left, top = req["left"], req["top"]
    canvas[top : top + ph, left : left + pw] = pic
    return torch.from_numpy(canvas.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0).contiguous()


def build(spec, x):
    """The network of spec, seeded, its convolutions normalized on the
    input x as a trained network's batch normalization would (folded into
    them), and its class biases set so that a handful of (cell, class)
    pairs pass the threshold on x. A random network this deep amplifies
    small changes of its input, so x must be the very picture the tests
    run it on, not merely the same photo."""
    torch.manual_seed(spec.seed())
    net = {"yolov8": yolov8, "yolo11": yolo11, "yolov5": yolov5, "yolov10": yolov10}[spec.family](spec).eval()
    head = net.head
    final = {id(c) for c in head.class_convs()}
    if isinstance(head, DFLHead):
        final |= {id(c) for c in head.box_convs()} | {id(head.dfl)}
    with torch.no_grad():
        hooks = [
            m.register_forward_hook(normalized(lambda c: 1.0))
            for m in net.modules()
            if isinstance(m, nn.Conv2d) and id(m) not in final
        ]
        if isinstance(head, DFLHead):
            # Box sides peaked enough to differ from cell to cell; class
            # logits spread enough for a few to stand out.
            hooks += [c.register_forward_hook(normalized(lambda c: 2.0)) for c in head.box_convs()]
            hooks += [c.register_forward_hook(normalized(lambda c: 1.5)) for c in head.class_convs()]
        else:
            # Centers and sizes near the anchors', objectness near 1, class
            # logits spread as above.
            stds = [0.5, 0.5, 0.5, 0.5, 0.0] + [1.5] * head.nc
            hooks += [c.register_forward_hook(normalized(lambda c: stds[c % head.no])) for c in head.class_convs()]
            for conv in head.class_convs():
                conv.bias.view(head.na, head.no)[:, 4] = 8.0
        net(x)
        for h in hooks:
            h.remove()
        calibrate(net, x)
    return net


def normalized(std_of):
    """A forward hook that folds a normalization into its convolution, as
    batch normalization is folded: each output channel c of the first pass
    gets mean 0 (but for a zero target, which keeps the bias) and standard
    deviation std_of(c)."""

    def hook(conv, inputs, out):
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3)).clamp(min=1e-6)
        for c in range(out.shape[1]):
            target = std_of(c)
            if target == 0:
                conv.weight[c].zero_()
                continue
            k = target / std[c]
            conv.weight[c].mul_(k)
            conv.bias[c] = (conv.bias[c] - mean[c]) * k
        conv._forward_hooks.clear()
        return conv(inputs[0])

    return hook


def calibrate(net, x):
    """Shifts the class biases so that a handful of class logits pass the
    threshold: the cut goes in the widest gap between the 3rd and the 12th
    greatest logits on x, so that the networks' small numeric differences
    and a picture's coding noise move no score across it."""
    head = net.head
    feats = net.features(x)
    if isinstance(head, DFLHead):
        logits = torch.cat([seq(f).flatten() for seq, f in zip(head.cv3, feats)])
    else:
        logits = torch.cat(
            [conv(f).view(1, head.na, head.no, -1)[:, :, 5:, :].flatten() for conv, f in zip(head.class_convs(), feats)]
        )
    top = logits.sort(descending=True).values[:13]
    k = max(range(3, 13), key=lambda k: (top[k - 1] - top[k]).item())
    cut = (top[k - 1] + top[k]) / 2
    shift = math.log(CONFIDENCE / (1 - CONFIDENCE)) - cut.item()
    for conv in head.class_convs():
        if isinstance(head, DFLHead):
            conv.bias.add_(shift)
        else:
            conv.bias.view(head.na, head.no)[:, 5:].add_(shift)


def export(spec, net, path, names):
    x = torch.zeros(1, 3, spec.size, spec.size)
    torch.onnx.export(
        net, x, path, opset_version=spec.opset, input_names=["images"], output_names=["output0"],
        do_constant_folding=True,
    )
    model = onnx.load(path)
    if spec.family == "yolov5":
        meta = {"stride": "32", "names": str(dict(enumerate(names)))}
    else:
        meta = {
            "description": f"camera_exporter test network {spec.text}",
            "author": "camera_exporter tests",
            "date": "2026-12-07T00:00:00",
            "version": "8.3.0",
            "license": "Apache-2.0",
            "stride": "32",
            "task": "detect",
            "batch": "1",
            "imgsz": str([spec.size, spec.size]),
            "names": str(dict(enumerate(names))),
        }
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)


def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError(f"{path}: not an 8-bit binary PPM")
    w, h = int(fields[1]), int(fields[2])
    return np.frombuffer(data[pos + 1 : pos + 1 + 3 * w * h], np.uint8).reshape(h, w, 3)


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def reference(spec, net, req):
    """Forward of the whole network on the request's picture, decoded: threshold,
    class-wise NMS, boxes in source pixels clipped to the picture."""
    x = placed(req, spec.size)
    ph, pw = read_ppm(req["picture"]).shape[:2]
    left, top = req["left"], req["top"]
    with torch.no_grad():
        out = net(x)[0].double().numpy()
    cands = []
    if spec.family == "yolov5":  # [N, 5 + C]
        for row in out:
            cls = int(np.argmax(row[5:]))
            conf = row[4] * row[5 + cls]
            if row[4] >= CONFIDENCE and conf >= CONFIDENCE:
                cands.append((conf, cls, row[:4]))
    else:  # [4 + C, N]
        for j in range(out.shape[1]):
            cls = int(np.argmax(out[4:, j]))
            conf = out[4 + cls, j]
            if conf >= CONFIDENCE:
                cands.append((conf, cls, out[:4, j]))
    cands.sort(key=lambda c: -c[0])
    sx, sy = req["src_width"] / pw, req["src_height"] / ph
    clip = lambda v, hi: min(max(v, 0.0), hi)

    def to_source(box):
        x1, y1, x2, y2 = box
        x1, x2 = clip((x1 - left) * sx, req["src_width"]), clip((x2 - left) * sx, req["src_width"])
        y1, y2 = clip((y1 - top) * sy, req["src_height"]), clip((y2 - top) * sy, req["src_height"])
        return x1, y1, x2, y2

    # Boxes with no area in the picture (in the letterbox's padding) are
    # dropped before suppression, the others suppressed in input pixels.
    kept = []
    for conf, cls, (cx, cy, w, h) in cands:
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        x1, y1, x2, y2 = to_source(box)
        if not (x2 > x1 and y2 > y1):
            continue
        if any(k[1] == cls and iou(k[2], box) > IOU for k in kept):
            continue
        kept.append((conf, cls, box))
    dets = []
    for conf, cls, box in kept:
        x1, y1, x2, y2 = to_source(box)
        dets.append({"class": cls, "confidence": conf, "box": [x1, y1, x2 - x1, y2 - y1]})
    return {"detections": dets}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", required=True)
    b.add_argument("--calibration", required=True, help="JSON: for each input size, a request whose picture calibrates")
    b.add_argument("--coco-names", required=True)
    b.add_argument("specs", nargs="+")
    sub.add_parser("reference")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.cmd == "build":
        with open(args.coco_names) as f:
            coco = [l.strip() for l in f if l.strip()]
        with open(args.calibration) as f:
            calibration = json.load(f)
        os.makedirs(args.out, exist_ok=True)
        for text in args.specs:
            spec = Spec(text)
            path = os.path.join(args.out, text + ".onnx")
            tmp = path + ".tmp"
            net = build(spec, placed(calibration[str(spec.size)], spec.size))
            export(spec, net, tmp, spec.names(coco))
            os.replace(tmp, path)
    else:
        results = []
        for req in json.load(sys.stdin):
            spec = Spec(req["spec"])
            net = build(spec, placed(req, spec.size))
            results.append(reference(spec, net, req))
        json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
