"""Speech fixtures for audio tests: espeak-ng speaks known sentences, ffmpeg
re-encodes them, and ``wer`` scores a transcript against its sentence."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Measured with the embedded tiny.en (DESIGN.md): voice en-us at 120-140
# words per minute transcribes with word error rates of 0-0.15.
VOICE = "en-us"
WORDS_PER_MINUTE = 130

SENTENCES = (
    "Please send me the report before the meeting on Friday.",
    "My brother bought a new car last week.",
    "I would like a cup of coffee with milk and sugar.",
)

# About sixty seconds of speech at 130 words per minute.
LONG_TEXT = (
    "Good morning everyone and thank you for coming to this meeting. "
    "Today we are going to talk about the plans for the next quarter. "
    "First, the sales team will present the results of the last three months. "
    "Then we will discuss the new product and the marketing budget. "
    "After lunch, the engineering team will show the progress on the new website. "
    "We hope to finish the project before the end of the year. "
    "Please write down your questions and we will answer them at the end. "
    "If you need anything during the day, you can ask me or my assistant. "
    "The coffee and the water are in the room next door. "
    "Thank you again for being here, and let us begin with the first presentation. "
    "We have a lot of work to do, so please keep your phones in your pocket."
)


def require_tools() -> None:
    """Skip unless espeak-ng and ffmpeg are installed (``.ci/run`` installs both)."""
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install espeak-ng ffmpeg)")


def speak(text: str, path: Path, wpm: int = WORDS_PER_MINUTE) -> Path:
    """``text`` spoken by espeak-ng into the WAV file ``path``."""
    subprocess.run(
        ["espeak-ng", "-v", VOICE, "-s", str(wpm), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return path


def encode(wav: Path, extension: str) -> Path:
    """``wav`` re-encoded by ffmpeg into the container its ``extension`` names."""
    out = wav.with_suffix(f".{extension}")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def silence(path: Path, seconds: float) -> Path:
    """A WAV file of digital silence."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            str(seconds),
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("sea-shore" -> "sea", "shore")."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))
