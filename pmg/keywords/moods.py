"""Moods a chat message can carry, with the words people and LLMs use for them, and a detector.

Used twice: the keyword stage makes sure the target keywords name the message's mood (a 135M LLM
often gives "today, day, so" for "I'm so happy today!"), and pmg-mini's training phrases target
windows with the same vocabulary.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["MOOD_WORDS", "WORD_TO_MOOD", "detect_mood", "mood_of_keywords"]

MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "smile", "grin", "joy", "cheerful", "joyful", "glad", "smiling", "delighted", "yay", "excited"),
    "laughing": ("laughing", "tears of joy", "laugh", "funny", "hilarious", "lol", "haha", "lmao"),
    "love": ("love", "heart-eyes", "heart", "kiss", "romance", "loving", "adore", "romantic", "affection", "crush"),
    "sad": ("sad", "crying", "tear", "unhappy", "down", "cry", "miss", "sorrow", "heartbroken", "lonely"),
    "angry": ("angry", "frown", "rage", "mad", "annoyed", "anger", "furious", "frustrated", "upset"),
    "surprised": ("surprised", "astonished", "open mouth", "shocked", "wow", "surprise", "omg", "amazed", "unexpected"),
    "tired": ("tired", "sleepy", "yawn", "exhausted", "weary", "nap", "fatigue"),
    "scared": ("scared", "fear", "afraid", "fearful", "anxious", "nervous", "scream", "worried"),
    "cool": ("cool", "confident", "chill", "sunglasses", "awesome"),
    "silly": ("silly", "goofy", "playful", "tongue", "crazy", "wink"),
    "thinking": ("thinking", "wonder", "hmm", "curious", "pondering", "doubt"),
    "sick": ("sick", "ill", "nausea", "fever", "cold", "unwell"),
    "party": ("party", "celebrate", "celebration", "birthday", "congrats", "hooray"),
}
WORD_TO_MOOD = {w: m for m, ws in MOOD_WORDS.items() for w in ws}

# how a person in that mood might say it: the detector compares a message with these
# (worded apart from the emoticon benchmark's messages, so its "mood named" score is not a lookup)
_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happy": ("feeling great and cheerful today", "great news, it worked out!", "we won, what a wonderful day",
              "smiling all day, life is good"),
    "laughing": ("that joke made me crack up", "rofl, too funny", "I'm in tears from laughing at this meme"),
    "love": ("I adore you, sweetheart", "you're my everything", "sending hugs and kisses to my darling",
             "thinking of you, my love"),
    "sad": ("feeling low and lonely tonight", "I lost my dog and I keep crying", "my grandma passed away",
            "everything feels gloomy"),
    "angry": ("ugh, stop it, I hate this", "they ruined it again, unacceptable", "I'm so mad at my landlord",
              "this is infuriating"),
    "surprised": ("what?! that's unbelievable", "omg, you're kidding", "I never saw that coming"),
    "tired": ("I need a nap", "this long day wore me out", "can barely keep my eyes open", "drained after the gym"),
    "scared": ("that was terrifying", "I'm nervous about tomorrow's exam", "there's a spider, help"),
    "cool": ("no big deal, I've got this", "nice, just chilling in the sun", "that car is awesome"),
    "silly": ("hehe, I'm kidding", "look at this crazy thing I did", "being goofy with my friends"),
    "thinking": ("hmm, let me think about that", "I wonder why it works", "not sure, what do you think?"),
    "sick": ("I caught a cold", "my stomach hurts", "staying in bed with a fever"),
    "party": ("let's party tonight", "happy birthday to you!", "congrats on the new job, cheers"),
}


def detect_mood(message: str, embed: Callable[[Sequence[str]], torch.Tensor], min_similarity: float = 0.3) -> str | None:
    """The mood whose prototype sentence is nearest to ``message`` (MiniLM cosine), if near enough."""
    names = [n for n, ps in _PROTOTYPES.items() for _ in ps]
    sims = (embed([message]) @ embed([p for ps in _PROTOTYPES.values() for p in ps]).T)[0]
    best = int(sims.argmax())
    return names[best] if float(sims[best]) >= min_similarity else None


def mood_of_keywords(keywords: Sequence[str]) -> str | None:
    """The mood most of ``keywords`` name ("happy, joy, smile" -> happy), or None."""
    votes: dict[str, int] = {}
    for k in keywords:
        for w in [k.lower(), *k.lower().split()]:
            if w in WORD_TO_MOOD:
                votes[WORD_TO_MOOD[w]] = votes.get(WORD_TO_MOOD[w], 0) + 1
                break
    return max(votes, key=lambda m: (votes[m], -list(MOOD_WORDS).index(m))) if votes else None
