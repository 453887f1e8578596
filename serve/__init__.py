"""`edgeclf serve`: artifact folders behind the Open Inference Protocol (KServe v2) over HTTP, with dynamic
batching. Needs the serve extra: pip install 'edgeclf[serve]'."""
