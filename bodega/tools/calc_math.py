"""The calculator's numbers: exact ``Fraction`` arithmetic with size checks,
powers and roots, and the whitelisted functions and constants.

Every result goes through ``checked``: a finite real number of at most
``MAX_BITS`` bits. Sizes are checked *before* a power, a factorial or a
binomial is computed, so a huge one is refused, not attempted.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

Number = Fraction | float

MAX_BITS = 13_000  # about 3900 decimal digits, below Python's int-to-str limit
_LN2 = math.log(2)


class CalculatorError(ValueError):
    """The expression is not allowed, not valid, or cannot be computed."""


def checked(value: Number) -> Number:
    """``value`` if it is a finite real number of bounded size."""
    if isinstance(value, Fraction):
        if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
            raise CalculatorError(f"a number in the calculation exceeds {MAX_BITS} bits")
        return value
    if isinstance(value, int):
        return checked(Fraction(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalculatorError("the result is not a finite number (overflow)")
        return value
    raise CalculatorError("the result is not a real number")


def _float(value: Number) -> float:
    try:
        return float(value)
    except OverflowError:
        raise CalculatorError("a number is too large for a floating-point function") from None


def _integer(value: Number, what: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise CalculatorError(f"{what} must be an integer")
        value = Fraction(int(value))
    if value.denominator != 1:
        raise CalculatorError(f"{what} must be an integer")
    return value.numerator


def _iroot(n: int, k: int) -> int | None:
    """The exact ``k``-th root of ``n >= 0``, or None."""
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // k)  # >= the root
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            break
        x = y
    return x if x**k == n else None


def _exact_root(value: Fraction, k: int) -> Fraction | None:
    """``value ** (1/k)`` when it is rational (negative values only for odd ``k``)."""
    if value < 0:
        if k % 2 == 0:
            return None
        root = _exact_root(-value, k)
        return -root if root is not None else None
    num, den = _iroot(value.numerator, k), _iroot(value.denominator, k)
    return Fraction(num, den) if num is not None and den is not None else None


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, Fraction) and isinstance(exponent, Fraction):
        if exponent.denominator == 1:
            n = exponent.numerator
            if base in (0, 1, -1):
                if base == 0 and n < 0:
                    raise CalculatorError("division by zero")
                return base**n
            size = max(base.numerator.bit_length(), base.denominator.bit_length())
            if (size - 1) * abs(n) > MAX_BITS:
                raise CalculatorError(f"the power's result would exceed {MAX_BITS} bits")
            return base**n
        if exponent.denominator <= 64 and abs(exponent.numerator) <= MAX_BITS:
            root = _exact_root(base, exponent.denominator)
            if root is not None:
                return _power(root, Fraction(exponent.numerator))
    b, x = _float(base), _float(exponent)
    if b < 0 and not x.is_integer():
        raise CalculatorError("a negative number to a fractional power is not a real number")
    if b == 0 and x < 0:
        raise CalculatorError("division by zero")
    try:
        return math.pow(b, x)
    except OverflowError:
        raise CalculatorError("the result is not a finite number (overflow)") from None


def binary(op: ast.operator, left: Number, right: Number) -> Number:
    """``left op right`` for a whitelisted arithmetic operator."""
    try:
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        if isinstance(op, ast.FloorDiv):
            return left // right
        if isinstance(op, ast.Mod):
            return left % right
        if isinstance(op, ast.Pow):
            return _power(left, right)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("the result is not a finite number (overflow)") from None
    name = OPERATOR_NAMES.get(type(op), type(op).__name__)
    raise CalculatorError(f"operator `{name}` is not allowed")


OPERATOR_NAMES: dict[type, str] = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}


# -- functions -------------------------------------------------------------------------


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalculatorError("sqrt of a negative number is not a real number")
    if isinstance(x, Fraction):
        root = _exact_root(x, 2)
        if root is not None:
            return root
    return math.sqrt(_float(x))


def _cbrt(x: Number) -> Number:
    if isinstance(x, Fraction):
        root = _exact_root(x, 3)
        if root is not None:
            return root
    return math.cbrt(_float(x))


def _log_with(fn: Callable[[float], float], v: Number) -> float:
    if v <= 0:
        raise CalculatorError("log of a number <= 0 is undefined")
    if isinstance(v, Fraction):  # math.log takes big ints without overflowing
        return fn(v.numerator) - fn(v.denominator)
    return fn(v)


def _log(x: Number, base: Number | None = None) -> float:
    if base is None:
        return _log_with(math.log, x)
    if base in (2, 10):
        return _log_with(math.log2 if base == 2 else math.log10, x)
    divisor = _log_with(math.log, base)
    if divisor == 0:
        raise CalculatorError("log base 1 is undefined")
    return _log_with(math.log, x) / divisor


def _bits_of_gamma_ratio(top: int, *bottoms: int) -> float:
    """log2 of ``top! / prod(b!)`` (approximate), to refuse huge results up front."""
    value = math.lgamma(top + 1) - sum(math.lgamma(b + 1) for b in bottoms)
    return value / _LN2


def _small(value: Number, what: str) -> int:
    n = _integer(value, what)
    if n < 0:
        raise CalculatorError(f"{what} must not be negative")
    if n.bit_length() > 64:
        raise CalculatorError(f"{what} is too large")
    return n


def _factorial(x: Number) -> Fraction:
    n = _small(x, "factorial's argument")
    if _bits_of_gamma_ratio(n) > MAX_BITS:
        raise CalculatorError(f"factorial({n}) would exceed {MAX_BITS} bits")
    return Fraction(math.factorial(n))


def _comb(n_: Number, k_: Number) -> Fraction:
    n, k = _small(n_, "comb's n"), _small(k_, "comb's k")
    if k > n:
        return Fraction(0)
    if _bits_of_gamma_ratio(n, k, n - k) > MAX_BITS:
        raise CalculatorError(f"comb({n}, {k}) would exceed {MAX_BITS} bits")
    return Fraction(math.comb(n, k))


def _perm(n_: Number, k_: Number | None = None) -> Fraction:
    n = _small(n_, "perm's n")
    k = n if k_ is None else _small(k_, "perm's k")
    if k > n:
        return Fraction(0)
    if _bits_of_gamma_ratio(n, n - k) > MAX_BITS:
        raise CalculatorError(f"perm({n}, {k}) would exceed {MAX_BITS} bits")
    return Fraction(math.perm(n, k))


def _round(x: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return Fraction(round(x))
    n = _integer(digits, "round's digits")
    if abs(n) > 1000:
        raise CalculatorError("round's digits must be between -1000 and 1000")
    if isinstance(x, Fraction):
        return round(x, n)
    return round(x, n)


def _floating(fn: Callable[..., float]) -> Callable[..., Number]:
    def call(*args: Number) -> Number:
        try:
            return fn(*(_float(a) for a in args))
        except ValueError:
            raise CalculatorError(f"{fn.__name__}: math domain error") from None
        except OverflowError:
            raise CalculatorError(f"{fn.__name__}: the result overflows") from None

    return call


def _integers(fn: Callable[..., int]) -> Callable[..., Number]:
    def call(*args: Number) -> Number:
        return Fraction(fn(*(_integer(a, f"{fn.__name__}'s arguments") for a in args)))

    return call


@dataclass(frozen=True)
class Function:
    """A whitelisted function: its implementation, arity and a one-line help."""

    call: Callable[..., Number]
    min_args: int
    max_args: int | None  # None: any number
    help: str


FUNCTIONS: dict[str, Function] = {
    "sqrt": Function(_sqrt, 1, 1, "square root (exact for perfect squares)"),
    "cbrt": Function(_cbrt, 1, 1, "cube root (exact for perfect cubes)"),
    "exp": Function(_floating(math.exp), 1, 1, "e to the x"),
    "log": Function(_log, 1, 2, "natural log, or log(x, base)"),
    "ln": Function(_log, 1, 1, "natural log"),
    "log2": Function(lambda x: _log_with(math.log2, x), 1, 1, "log base 2"),
    "log10": Function(lambda x: _log_with(math.log10, x), 1, 1, "log base 10"),
    "sin": Function(_floating(math.sin), 1, 1, "sine (radians)"),
    "cos": Function(_floating(math.cos), 1, 1, "cosine (radians)"),
    "tan": Function(_floating(math.tan), 1, 1, "tangent (radians)"),
    "asin": Function(_floating(math.asin), 1, 1, "arc sine"),
    "acos": Function(_floating(math.acos), 1, 1, "arc cosine"),
    "atan": Function(_floating(math.atan), 1, 1, "arc tangent"),
    "atan2": Function(_floating(math.atan2), 2, 2, "atan2(y, x)"),
    "sinh": Function(_floating(math.sinh), 1, 1, "hyperbolic sine"),
    "cosh": Function(_floating(math.cosh), 1, 1, "hyperbolic cosine"),
    "tanh": Function(_floating(math.tanh), 1, 1, "hyperbolic tangent"),
    "degrees": Function(_floating(math.degrees), 1, 1, "radians to degrees"),
    "radians": Function(_floating(math.radians), 1, 1, "degrees to radians"),
    "hypot": Function(_floating(math.hypot), 1, None, "Euclidean norm"),
    "abs": Function(abs, 1, 1, "absolute value"),
    "floor": Function(lambda x: Fraction(math.floor(x)), 1, 1, "round down"),
    "ceil": Function(lambda x: Fraction(math.ceil(x)), 1, 1, "round up"),
    "trunc": Function(lambda x: Fraction(math.trunc(x)), 1, 1, "round toward zero"),
    "round": Function(_round, 1, 2, "round(x) or round(x, digits), half to even"),
    "min": Function(min, 1, None, "smallest argument"),
    "max": Function(max, 1, None, "largest argument"),
    "pow": Function(_power, 2, 2, "pow(x, y) = x ** y"),
    "factorial": Function(_factorial, 1, 1, "n!"),
    "comb": Function(_comb, 2, 2, "binomial coefficient"),
    "perm": Function(_perm, 1, 2, "permutations"),
    "gcd": Function(_integers(math.gcd), 1, None, "greatest common divisor"),
    "lcm": Function(_integers(math.lcm), 1, None, "least common multiple"),
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
