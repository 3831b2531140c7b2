"""Moods a chat message can carry, with the words people and LLMs use for them, and a detector.

Used twice: the keyword stage makes sure the target keywords name the message's mood (a 135M LLM
often gives "today, day, so" for "I'm so happy today!"), and pmg-mini's training phrases target
windows with the same vocabulary.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["MOOD_WORDS", "WORD_TO_MOOD", "detect_mood"]

MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "joy", "joyful", "glad", "cheerful", "smile", "smiling", "grin", "delighted", "yay", "excited"),
    "laughing": ("laugh", "laughing", "lol", "haha", "hilarious", "funny", "tears of joy", "lmao"),
    "love": ("love", "loving", "heart-eyes", "adore", "romance", "romantic", "affection", "crush", "heart", "kiss"),
    "sad": ("sad", "unhappy", "down", "cry", "crying", "tear", "miss", "sorrow", "heartbroken", "lonely"),
    "angry": ("angry", "anger", "mad", "annoyed", "rage", "furious", "frustrated", "upset"),
    "surprised": ("surprised", "surprise", "wow", "shocked", "astonished", "omg", "amazed", "unexpected"),
    "tired": ("tired", "exhausted", "sleepy", "weary", "yawn", "nap", "fatigue"),
    "scared": ("scared", "fear", "afraid", "fearful", "anxious", "nervous", "scream", "worried"),
    "cool": ("cool", "confident", "chill", "sunglasses", "awesome"),
    "silly": ("silly", "goofy", "playful", "tongue", "crazy", "wink"),
    "thinking": ("thinking", "wonder", "hmm", "curious", "pondering", "doubt"),
    "sick": ("sick", "ill", "nausea", "fever", "cold", "unwell"),
    "party": ("party", "celebrate", "celebration", "birthday", "congrats", "hooray"),
}
WORD_TO_MOOD = {w: m for m, ws in MOOD_WORDS.items() for w in ws}

# how a person in that mood might say it: the detector compares a message with these
_PROTOTYPES = {
    "happy": "I am so happy and glad today", "laughing": "hahaha that is so funny, I can't stop laughing",
    "love": "I love you so much, you mean the world to me", "sad": "I feel sad and down, I miss her",
    "angry": "this is so annoying, I am angry and upset", "surprised": "wow, I did not expect that, no way",
    "tired": "I am exhausted and sleepy", "scared": "I am scared and worried", "cool": "that is so cool, awesome",
    "silly": "just being silly and goofy", "thinking": "hmm, let me think about that",
    "sick": "I feel sick, I have a fever", "party": "let's party and celebrate, happy birthday",
}


def detect_mood(message: str, embed: Callable[[Sequence[str]], torch.Tensor], min_similarity: float = 0.3) -> str | None:
    """The mood whose prototype sentence is nearest to ``message`` (MiniLM cosine), if near enough."""
    names = list(_PROTOTYPES)
    sims = embed([message]) @ embed([_PROTOTYPES[n] for n in names]).T
    best = int(sims[0].argmax())
    return names[best] if float(sims[0, best]) >= min_similarity else None
