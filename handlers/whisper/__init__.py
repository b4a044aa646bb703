"""Speech to text: faster-whisper and mlx-whisper."""
