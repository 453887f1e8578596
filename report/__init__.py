"""Pictures, model cards and text tables of artifact folders (edgeclf plot, bench and verify output)."""
