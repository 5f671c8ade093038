"""Feature front end: decode media, extract audio / visual / text features (model/features/README.md).

Names are imported lazily so that a helper process that needs one small module
(the speech recogniser in model.features.speech) does not load OpenCV, openSMILE
and onnxruntime too.
"""
from importlib import import_module

_WHERE = {
    "AUDIO_DIM": "voice", "AUDIO_NAMES": "voice", "VISUAL_DIM": "visual", "VISUAL_NAMES": "visual",
    "ClipFeatures": "config", "FrontEndConfig": "config", "FeatureError": "errors", "FrontEnd": "frontend",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'model.features' has no attribute {name!r}")
    return getattr(import_module(f"model.features.{_WHERE[name]}"), name)
