"""Pricing rules of the example shop."""


def total(prices: list[float], discount: float = 0.0) -> float:
    """Sum of prices after a fractional discount."""
    return round(sum(prices) * (1.0 - discount), 2)
