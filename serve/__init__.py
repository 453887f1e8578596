"""`edgeclf serve`: artifact folders behind the Open Inference Protocol (KServe v2) over HTTP, with dynamic
batching. Needs the serve extra: pip install 'edgeclf[serve]'. This module imports nothing heavy: the CLI reads the
defaults from it."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH_ROWS = 256  # rows per coalesced Classifier call
DEFAULT_MAX_QUEUE = 1024  # requests waiting per model before 503
DEFAULT_MAX_BODY_MB = 16.0  # MiB per request body before 413
DEFAULT_IDLE_TIMEOUT = 5  # seconds a connection may stay silent, before its first request or between two
