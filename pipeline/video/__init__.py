"""Video and image-sequence I/O through ffmpeg: probe, streamed sources, encoding sinks, segments.

Everything runs the ffmpeg binary shipped by imageio-ffmpeg (see `ffmpeg.py` for the order in
which a binary is chosen); nothing here needs ffprobe or a system ffmpeg.
"""
