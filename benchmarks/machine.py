"""What every benchmark prints beside its figures: how busy the machine was. Figures taken while other work runs
are not comparable with figures from an idle machine."""

from __future__ import annotations

import os


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"
