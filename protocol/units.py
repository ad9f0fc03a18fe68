"""How sizes and durations are written where users read them (cf's style)."""

from __future__ import annotations

__all__ = ["format_bytes", "format_mb"]


def format_bytes(size: float) -> str:
    """cf's byte sizes: 512B, 1K, 1.2K, 45.2M, 1G."""
    units = ("B", "K", "M", "G", "T")
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)}B"
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{text}{units[unit]}"


def format_mb(mb: float) -> str:
    """Memory and disk quotas and usage: 256M, 1G, 31.2M."""
    if mb >= 1024 and float(mb) % 1024 == 0:
        return f"{int(mb // 1024)}G"
    if mb >= 1024:
        return f"{mb / 1024:.1f}G"
    if float(mb).is_integer():
        return f"{int(mb)}M"
    return f"{mb:.1f}M"
