"""Emoji the page offers for building a history (drawn by the browser's emoji font), with their
Unicode names as item titles."""

import unicodedata

_CHARS = ("😀😂😍😢😠😲😫😎🤔😴🥳😺😸😹😻😼😽🙀😿😾🐶🐕🐩🦮🐱🐈🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵🐔🐧🦉🐝🦋🐢🐙"
          "🍕🍔🍟🌭🍣🍩🍎🍓🍉🍌⚽🏀🏈⚾🎾🏐🏓❤🧡💛💚💙💜🖤💔💕💖🌵🌻🌹🌲🍀🌸☀🌧❄⭐🚀🚗🎸🎮📚")
STYLES = ("twemoji", "openmoji", "noto")

PALETTE = {
    "styles": list(STYLES),
    "emoji": [{"char": c, "title": unicodedata.name(c, "emoji").lower()} for c in _CHARS],
}
