"""Export a model to ONNX, TorchScript and .pt2 with proven parity (edgeclf.export.pipeline). This module holds
the export settings the CLI validates options with, and imports nothing heavy."""

DEFAULT_OPSET = 20
MIN_OPSET, MAX_OPSET = 18, 23  # torch 2.13's dynamo exporter range that onnxruntime also runs
DEFAULT_BATCH_SIZES = (1, 64, 1024, 4096, 16384)  # latency, small batches, tails, mid-size calls, throughput chunks
MAX_BATCH = 1 << 20
EDGE_FORMATS = ("c", "ort", "int8")  # opt-in: a C99 header, onnxruntime's .ort, statically quantised ONNX
LAYOUT_CHOICES = ("auto", "row-major", "feature-major")  # how each ONNX graph is arranged (export.layout)
