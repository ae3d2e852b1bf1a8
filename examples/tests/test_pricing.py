import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from shop.pricing import total


def test_total_applies_discount() -> None:
    assert total([10.0, 20.0], 0.1) == 27.0
