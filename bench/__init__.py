"""`edgeclf bench`: the runtime measured against eager PyTorch, TorchScript and raw onnxruntime, in one run."""
