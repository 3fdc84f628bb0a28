"""discriminator: media preparation (x264 ladder, DASH + HLS) and offline Wav2Lip lip-sync."""

__version__ = "0.1.0"
