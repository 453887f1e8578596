"""Training (edgeclf.train): task registry, tables, the MLP, the training loop, checkpoints, calibration.

For bytes that are the same on every x86-64 CPU, call edgeclf.train.settings.pin_arithmetic() before torch is
imported (the CLI's train and run commands do)."""
