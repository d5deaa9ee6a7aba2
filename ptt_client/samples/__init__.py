"""Short English speech samples (radio calls) for the simulator and the voice tests.

The WAV files beside this module are 16 kHz mono 16-bit, 2-3 s each, synthesised with espeak-ng
by ``tools/make_samples.sh`` (see README.md here). Read them with
:class:`ptt_client.audio.WavFileInput`, which converts them to the codec's 48 kHz.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def sample_paths() -> list[Path]:
    """Return the committed speech samples, sorted by file name so callers can index them."""
    paths = sorted(_HERE.glob("*.wav"))
    if not paths:
        # A packaging mistake (wheel built without data files), not a user error.
        raise FileNotFoundError(
            f"no speech samples in {_HERE}: regenerate them with tools/make_samples.sh"
        )
    return paths
