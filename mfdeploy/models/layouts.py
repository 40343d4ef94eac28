"""Deploy-form layout specs: "key=value,..." strings naming measured op arrangements
(MobileViTv2's `--form deploy:features=nchw`; benchmarks/deploy_layouts.py reads Mobile-Former's
rejected layouts with it)."""

from __future__ import annotations


def parse_layout_items(spec: str, choices: dict[str, tuple[str, ...]], what: str) -> dict[str, str]:
    """From "features=nchw,..." to {"features": "nchw", ...}; keys must be in `choices` (the
    layout class checks the values); "" gives {} (the defaults)."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in choices:
            raise ValueError(
                f"bad {what} item {item!r}; use KEY=VALUE with KEY in {', '.join(choices)}"
            )
        values[key.strip()] = value.strip()
    return values
