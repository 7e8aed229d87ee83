"""Key names as the model writes them ("Enter", "ctrl+s", "cmd+shift+t") as xdotool keysyms.

xdotool already understands X keysyms ("Return", "BackSpace", "Page_Up") and the modifier names
ctrl, alt, shift and super; the table below only adds the spellings models often use instead.
Anything not in it passes through unchanged.
"""

from __future__ import annotations

_ALIASES: dict[str, str] = {
    "enter": "Return", "return": "Return", "esc": "Escape", "escape": "Escape",
    "backspace": "BackSpace", "tab": "Tab", "space": "space", "spacebar": "space",
    "delete": "Delete", "del": "Delete", "insert": "Insert", "ins": "Insert",
    "home": "Home", "end": "End", "pageup": "Page_Up", "page_up": "Page_Up", "pgup": "Page_Up",
    "pagedown": "Page_Down", "page_down": "Page_Down", "pgdn": "Page_Down",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left", "arrowright": "Right",
    "capslock": "Caps_Lock", "printscreen": "Print", "menu": "Menu",
    "ctrl": "ctrl", "control": "ctrl", "alt": "alt", "option": "alt", "shift": "shift",
    "super": "super", "cmd": "super", "command": "super", "win": "super", "windows": "super", "meta": "super",
    "+": "plus", "-": "minus",
}


def keysym(name: str) -> str:
    """One key as xdotool names it."""
    return _ALIASES.get(name.lower(), name)


def combo(text: str) -> str:
    """One chord, e.g. ``"ctrl+shift+t"`` -> ``"ctrl+shift+t"``, ``"Enter"`` -> ``"Return"``."""
    if text == "+":
        return "plus"
    parts = text.split("+")
    if text.endswith("++"):  # "ctrl++": the last key is "+"
        parts = [*parts[:-2], "+"]
    return "+".join(keysym(p) for p in parts if p)


def combos(text: str) -> list[str]:
    """Chords separated by spaces, pressed one after the other: ``"ctrl+a Delete"``."""
    return [combo(part) for part in text.split()]


def modifiers(text: str | None) -> list[str]:
    """Keys to hold during a click or scroll, e.g. ``"shift"`` or ``"ctrl+shift"``."""
    if not text:
        return []
    return [keysym(p) for p in text.replace("+", " ").split()]
