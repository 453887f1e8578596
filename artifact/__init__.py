"""Artifact folders on disk (edgeclf.artifact.store): names, JSON bytes, atomic folder writes."""
