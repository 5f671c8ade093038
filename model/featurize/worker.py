"""The worker side of `model.featurize`: one FrontEnd per process, extraction only.

Local worker processes and Dask workers run the same two functions; the driver
(model/featurize/run.py) writes every file, so workers never touch the output folder.
"""
from __future__ import annotations

import logging
from pathlib import Path

from model.features import FeatureError, FrontEnd, FrontEndConfig
from model.features.media import VIDEO_EXTS

log = logging.getLogger(__name__)
_FRONT_END: FrontEnd | None = None


def init_front_end(config: dict) -> None:
    """Build this process's FrontEnd (a process-pool initializer, or a Dask worker plugin's setup)."""
    logging.basicConfig(level=logging.WARNING)
    use_front_end(FrontEnd(FrontEndConfig(**config)))


def use_front_end(front_end: FrontEnd) -> None:
    global _FRONT_END
    _FRONT_END = front_end


def extract(job: dict) -> dict:
    """The job with 'reason' set when the clip failed, else with its 'features'."""
    clip = Path(job["file"])
    try:
        kw = {"video": clip} if clip.suffix.lower() in VIDEO_EXTS else {"audio": clip}
        f = _FRONT_END.extract(text=job["text"], **kw)
    except FeatureError as e:
        return {**job, "reason": str(e)}
    except Exception as e:  # an unexpected failure in one clip must not stop a long run
        log.exception("%s failed", clip)
        return {**job, "reason": f"internal error: {e.__class__.__name__}: {e}"}
    return {**job, "reason": "", "features": {"audio": f.audio, "visual": f.visual, "text": f.text,
                                               "text_source": f.text_source, "quality": f.quality}}
