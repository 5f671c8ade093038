"""`python -m app.make_examples`: rebuild app/examples/ from the shared data (real, small, < 1 MB).

- voices: RAVDESS test-split actors (CC BY-NC-SA 4.0), re-encoded to ogg/opus, m4a/aac and wav;
- faces: FER2013 test images, upscaled 3x with a replicate border (the framing the
  expression model was checked on), held still with a slight sway for a few seconds;
- videos: mp4 (H.264 + AAC) of a FER face with a RAVDESS voice;
- text: SST test sentences and one CMU-MOSI test transcript.

Everything is chosen by fixed rules (file names, first matches in sorted order), so
the output is the same on every run. examples.json lists what the UI shows.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from model.files import data_root

log = logging.getLogger("mmim.app.examples")
OUT = Path(__file__).resolve().parent / "examples"
DATA = data_root()
RATE = 16000
FPS = 10
SIDE = 48 * 3
CANVAS = 288  # the face (144 px) with a 72 px margin: the framing both detectors were measured on
MAX_TOTAL_BYTES = 1_000_000

VOICES = {  # RAVDESS test actors, strong intensity, statement "Kids are talking by the door"
    "happy": "audio/Actor_23/03-01-03-02-01-01-23.flac",
    "sad": "audio/Actor_22/03-01-04-02-01-01-22.flac",
    "angry": "audio/Actor_23/03-01-05-02-01-01-23.flac",
    "neutral": "audio/Actor_24/03-01-01-01-01-01-24.flac",
}
SST = {"positive": "I loved it !", "negative": "I hated every minute of it ."}
MOSI_ID = "cM3Yna7AavY_6"  # label +2.8 in the test fold


def load_voice(data: Path, rel: str, seconds: float = 3.0) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(data / "ravdess" / rel, dtype="float32")
    if sr != RATE:
        raise ValueError(f"{rel}: expected {RATE} Hz, got {sr}")
    # RAVDESS clips start with ~0.5-1 s of silence: start just before the speech.
    energy = np.convolve(x**2, np.ones(320) / 320, mode="same")
    start = max(0, int(np.argmax(energy > 0.05 * energy.max())) - RATE // 10)
    return x[start : start + int(seconds * RATE)]


def sst_text(data: Path, sentence: str) -> str:
    with open(data / "text" / "sst.csv", newline="", encoding="utf-8") as f:
        if not any(r["text"] == sentence and r["split"] == "test" for r in csv.DictReader(f)):
            raise ValueError(f"{sentence!r} is not an SST test sentence")
    # SST is tokenised ("it !"); join the punctuation back for display.
    return sentence.replace(" !", "!").replace(" .", ".").replace(" 's", "'s")


def mosi_text(data: Path, segment_id: str) -> str:
    with open(data / "mosi" / "segments.csv", newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["id"] == segment_id)
    return row["text"].lower()


def fer_faces(data: Path, labels: tuple[str, ...]) -> dict[str, np.ndarray]:
    """First test-split FER image of each label (sorted by path) whose framed version the face detector finds."""
    import cv2

    from model.features.visual import FaceDetector

    with open(data / "faces" / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["blank"] == "0" and r["dup_group"] == "-1"]
    wanted = {lab: sorted(r["path"] for r in rows if r["label"] == lab)[:40] for lab in labels}
    members = {p for paths in wanted.values() for p in paths}
    images = {}
    with tarfile.open(data / "faces" / "fer2013_images.tar.xz") as tar:
        for member in tar:
            if member.name in members:
                data = np.frombuffer(tar.extractfile(member).read(), np.uint8)
                images[member.name] = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
            if len(images) == len(members):
                break
    detector = FaceDetector()
    chosen = {}
    for lab, paths in wanted.items():
        for p in paths:
            framed = frame_face(images[p])
            if detector.detect(framed[..., 0]):
                chosen[lab] = framed
                log.info("%s face: %s", lab, p)
                break
        else:
            raise RuntimeError(f"no detectable {lab} face among the first {len(paths)} FER test images")
    return chosen


def frame_face(grey48: np.ndarray) -> np.ndarray:
    import cv2

    face = cv2.resize(grey48, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    pad = (CANVAS - SIDE) // 2
    framed = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.repeat(framed[..., None], 3, axis=2)


def write_audio(path: Path, signal: np.ndarray, codec: str, bit_rate: int | None = None) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=RATE if codec != "libopus" else 16000, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        _mux_audio(out, stream, signal)
    return path


def _mux_audio(out, stream, signal: np.ndarray) -> None:
    import av

    for i in range(0, len(signal), 1024):
        frame = av.AudioFrame.from_ndarray(signal[None, i : i + 1024].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i, Fraction(1, RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_video(path: Path, still: np.ndarray, signal: np.ndarray) -> Path:
    import av

    n = int(len(signal) / RATE * FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width = video.height = CANVAS
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "30", "preset": "veryslow"}
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        audio.bit_rate = 32000
        for i in range(n):
            # A 1-2 px sway so the encoder and the detector see a moving picture, not one still.
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(still, (i % 5) - 2, axis=1)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        _mux_audio(out, audio, signal)
    return path


def make_examples(out: Path = OUT, data: Path = DATA) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    faces = fer_faces(data, ("happy", "angry"))
    voices = {k: load_voice(data, v) for k, v in VOICES.items()}
    examples = [
        {"text": sst_text(data, SST["positive"]), "note": "text only (SST)"},
        {"audio": write_audio(out / "ravdess_happy.ogg", voices["happy"], "libopus", 24000).name,
         "note": "RAVDESS happy voice, no text: the recogniser transcribes it"},
        {"text": sst_text(data, SST["negative"]), "audio": write_audio(out / "ravdess_sad.m4a", voices["sad"], "aac", 32000).name,
         "note": "sad voice + negative words"},
        {"text": mosi_text(data, MOSI_ID), "audio": write_audio(out / "ravdess_neutral.wav", voices["neutral"][: int(2.5 * RATE)], "pcm_s16le").name,
         "note": "neutral voice + a positive MOSI transcript"},
        {"video": write_video(out / "happy_face_happy_voice.mp4", faces["happy"], voices["happy"]).name,
         "note": "FER happy face + RAVDESS happy voice, automatic transcript"},
        {"text": sst_text(data, SST["positive"]), "video": write_video(out / "angry_face_angry_voice.mp4", faces["angry"], voices["angry"]).name,
         "note": "angry face and voice with positive words: modalities should disagree"},
    ]
    (out / "examples.json").write_text(json.dumps(examples, indent=2) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if total > MAX_TOTAL_BYTES:
        raise RuntimeError(f"app/examples is {total} bytes, over the {MAX_TOTAL_BYTES} budget")
    log.info("wrote %d examples to %s (%d bytes in all)", len(examples), out, total)
    return examples


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.make_examples", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    make_examples(args.out, args.data)


if __name__ == "__main__":
    main()
