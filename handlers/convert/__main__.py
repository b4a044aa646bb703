"""``python -m handlers.convert GGUF_PATH OUT_DIR [--dtype float32]``: GGUF -> MLX folder.

Prints the folder it wrote; exits 1 with a message for files it cannot convert.
"""

from __future__ import annotations

import argparse
import sys

from handlers.convert.gguf_to_mlx import DTYPES, ConversionError, convert_gguf


def main(argv: list[str] | None = None) -> int:
    """Run the converter; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m handlers.convert",
        description="Convert a llama GGUF file (Q4_0, Q4_1, Q8_0, F16, F32) to an MLX folder.",
    )
    parser.add_argument("gguf_path", metavar="GGUF_PATH")
    parser.add_argument("out_dir", metavar="OUT_DIR")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="dequantize every tensor to this type (default: keep the GGUF's quantization)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    args = parser.parse_args(argv)
    try:
        out = convert_gguf(args.gguf_path, args.out_dir, dtype=args.dtype, overwrite=args.force)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"error: {exc} (pass --force to replace it)", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
