"""Labels as people give them: a class number or a class's name, for intake's class
folders and CSVs and for the service's corrections alike."""

from __future__ import annotations

import re


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def class_index(text: str, classes: list[str]) -> int | None:
    """A label as a class number: "3" (after trimming; not "03", "+3" or "-3"), or a class's
    name in any case and punctuation ("Ankle boot", "ankle-boot", "T-shirt_top"); None when it
    is neither."""
    text = str(text).strip()
    if text.isascii() and text.isdigit():  # exactly a class number: not "07", "+7" or "-1"
        return int(text) if text == str(int(text)) and int(text) < len(classes) else None
    if not any(ch.isalpha() for ch in text):  # case and punctuation are forgiven in names only
        return None
    keys = [_key(c) for c in classes]
    return keys.index(_key(text)) if text and _key(text) in keys else None
