#!/usr/bin/env python3
"""Generate audio/moh/accords.wav: a gentle, quiet chord loop for music on hold.

Royalty-free by construction (pure sine tones computed here, no external material).
8 kHz mono 16-bit PCM, 20 s, four chords (C, A minor, F, G) of 5 s each, voiced inside the
telephone band (300-3400 Hz), with soft fades so the loop joins without a click.
Peak level about -18 dBFS. Run from the repository root: python3 audio/moh/make_moh.py
"""
import math
import struct
import wave

RATE = 8000
CHORD_SECONDS = 5.0
PEAK = 0.125  # about -18 dBFS
# Close voicings with smooth voice leading (Hz).
CHORDS = [
    (329.63, 392.00, 523.25),  # C  (E4 G4 C5)
    (329.63, 440.00, 523.25),  # Am (E4 A4 C5)
    (349.23, 440.00, 523.25),  # F  (F4 A4 C5)
    (392.00, 493.88, 587.33),  # G  (G4 B4 D5)
]
FADE = 0.8  # seconds of raised-cosine fade in and out per chord


def envelope(t, length):
    if t < FADE:
        return 0.5 - 0.5 * math.cos(math.pi * t / FADE)
    if t > length - FADE:
        return 0.5 - 0.5 * math.cos(math.pi * (length - t) / FADE)
    return 1.0


def main(path="audio/moh/accords.wav"):
    samples = []
    n = int(CHORD_SECONDS * RATE)
    for chord in CHORDS:
        for i in range(n):
            t = i / RATE
            # A slow swell (0.25 Hz) keeps the sound alive without being busy.
            swell = 0.85 + 0.15 * math.sin(2 * math.pi * 0.2 * t)
            v = sum(math.sin(2 * math.pi * f * t) for f in chord) / len(chord)
            # A soft arpeggio: each chord tone chimes once per second, decaying.
            k = int(t) % len(chord)
            chime_t = t - int(t)
            attack = min(1.0, chime_t / 0.03)  # 30 ms attack: no click
            v += 0.35 * attack * math.exp(-3.0 * chime_t) * math.sin(2 * math.pi * chord[k] * 2 * t)
            samples.append(PEAK / 1.35 * v * swell * envelope(t, CHORD_SECONDS))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(round(s * 32767))) for s in samples))


if __name__ == "__main__":
    main()
