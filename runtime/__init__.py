"""edgeclf's runtime: load an exported artifact folder and predict, with numpy and onnxruntime only.

    from edgeclf.runtime import Classifier
    clf = Classifier.load("artifacts/circles")
    clf.predict_proba([[0.1, -0.2]])
"""

from edgeclf.runtime.classifier import Classifier, plan_chunks
from edgeclf.runtime.errors import ArtifactError, EdgeclfError, InputError, ParityError, UnseenCategory
from edgeclf.runtime.manifest import SCHEMA, FileEntry, Manifest

__all__ = [
    "SCHEMA", "ArtifactError", "Classifier", "EdgeclfError", "FileEntry", "InputError", "Manifest",
    "ParityError", "UnseenCategory", "plan_chunks",
]
