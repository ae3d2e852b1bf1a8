"""producers.fullverify walks a file in steps and reaches the same verdict as grace.integrity's
one-go checks (sha256 and structure), on real pickle and zip files, sound and damaged."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

from grace import integrity
from producers import fullverify


def _drain(path: Path) -> tuple[str, str | None, int]:
    steps = fullverify.steps(path, structure=True)
    read = 0
    while True:
        try:
            read += next(steps)
        except StopIteration as stop:
            sha, reason, tail = stop.value
            return sha, reason, read + tail


def _zip(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)


def _flip_inside(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["pickle", "pickle_garbage", "pickle_trailing", "pickle_cut",
                                  "zip", "zip_crc", "zip_empty", "legacy_pt", "safetensors"])
def test_stepwise_verdict_equals_the_one_go_check(tmp_path: Path, case: str) -> None:
    weights = pickle.dumps({"w": bytes(range(256)) * 20_000, "b": [0.5] * 1000}, protocol=4)
    path = tmp_path / {"zip": "m.pt", "zip_crc": "m.pt", "zip_empty": "m.pt", "legacy_pt": "m.pt",
                       "safetensors": "m.safetensors"}.get(case, "m.pkl")
    if case.startswith("pickle"):
        path.write_bytes({"pickle": weights, "pickle_garbage": b"\x80\x04garbage" * 1000,
                          "pickle_trailing": weights + b"xx", "pickle_cut": weights[:-100]}[case])
    elif case == "zip_empty":
        zipfile.ZipFile(path, "w").close()
    elif case == "legacy_pt":
        path.write_bytes(weights)
    elif case == "safetensors":
        path.write_bytes(b"\x00" * 3_000_000)
    else:
        _zip(path, weights)
        if case == "zip_crc":
            _flip_inside(path, bytes(range(200, 256)))
    sha, reason, read = _drain(path)
    assert sha == integrity.sha256_file(path)
    expected = None if case == "safetensors" else integrity.check_structure(path)
    assert reason == expected
    assert (reason is None) == (case in ("pickle", "zip", "legacy_pt", "safetensors"))
    assert read >= path.stat().st_size
