"""Language models: llama.cpp and mlx-lm engines, chat prompts, constraints."""
