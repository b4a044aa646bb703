"""A safe calculator: ``ast`` parsing, a whitelist of nodes, names and functions, no ``eval``.

Integers and decimal literals are exact ``Fraction``s, so ``0.1 + 0.2`` is
exactly ``0.3`` and ``2**100`` is every digit of it; transcendental functions
(``sin``, ``log``, ``sqrt(2)``, ...) and the constants ``pi``, ``e``, ``tau``
give floats. Every input is bounded: the expression's length, its AST's size
and depth, every intermediate number's size (checked *before* a power, a
factorial or a binomial is computed), and the wall time of the evaluation.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import msgspec

Number = Fraction | float

MAX_LENGTH = 1000
MAX_NODES = 500
MAX_DEPTH = 100
MAX_BITS = 13_000  # about 3900 decimal digits, below Python's int-to-str limit
MAX_DECIMAL_DIGITS = 4000  # longer terminating decimals are shown as p/q
APPROX_DIGITS = 30
TIME_BUDGET = 1.0

_LN2 = math.log(2)
_DECIMAL = re.compile(r"^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


class CalculatorError(ValueError):
    """The expression is not allowed, not valid, or cannot be computed."""


class Calculation(msgspec.Struct, kw_only=True):
    """The calculator tool's result."""

    expression: str
    value: str  # exact: "42", "0.3", "1/3"; inexact: a float's repr
    exact: bool
    decimal: str  # "0.3333333333333333333333333333" for 1/3; same as value otherwise


def calculate(expression: str, *, budget: float = TIME_BUDGET) -> Calculation:
    """Evaluate ``expression`` and render it; ``CalculatorError`` explains a refusal."""
    value = evaluate(expression, budget=budget)
    if isinstance(value, float):
        text = repr(value)
        return Calculation(expression=expression, value=text, exact=False, decimal=text)
    exact = _exact_text(value)
    decimal = exact if "/" not in exact else _approximate(value)
    return Calculation(expression=expression, value=exact, exact=True, decimal=decimal)


def evaluate(expression: str, *, budget: float = TIME_BUDGET) -> Number:
    """The value of ``expression``: a ``Fraction`` when exact, else a float."""
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression is longer than {MAX_LENGTH} characters")
    source = " ".join(expression.split())  # line breaks and tabs are plain spaces
    if not source:
        raise CalculatorError("expression is empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not a valid expression: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError):
        raise CalculatorError("not a valid expression") from None
    _check_shape(tree)
    return _Evaluator(source, time.monotonic() + budget).eval(tree.body)


def _check_shape(tree: ast.AST) -> None:
    """Refuse trees that are too big or too deep, without recursing."""
    stack = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise CalculatorError(f"expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise CalculatorError(f"expression is nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


# -- numbers ---------------------------------------------------------------------------


def _checked(value: Number) -> Number:
    """``value`` if it is a finite real number of bounded size."""
    if isinstance(value, Fraction):
        if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
            raise CalculatorError(f"a number in the calculation exceeds {MAX_BITS} bits")
        return value
    if isinstance(value, int):
        return _checked(Fraction(value))
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


def _literal(text: str) -> Fraction:
    """A decimal literal's exact value, refusing exponents that would blow up."""
    text = text.replace("_", "")
    match = _DECIMAL.match(text)
    if not match:
        raise CalculatorError(f"unsupported number literal `{text}`")
    digits = len(match.group(1)) + len(match.group(2) or "")
    exponent = int(match.group(3) or 0)
    if abs(exponent) + digits > MAX_BITS // 4:
        raise CalculatorError(f"number literal `{text}` is too large or too small")
    return Fraction(text)


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


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
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
    name = _OPERATOR_NAMES.get(type(op), type(op).__name__)
    raise CalculatorError(f"operator `{name}` is not allowed")


_OPERATOR_NAMES: dict[type, str] = {
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.Invert: "~", ast.Not: "not",
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

_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access is",
    ast.Subscript: "subscripts are",
    ast.Lambda: "lambdas are",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "comprehensions are",
    ast.Compare: "comparisons are",
    ast.BoolOp: "boolean operators are",
    ast.IfExp: "conditional expressions are",
    ast.NamedExpr: "assignments are",
    ast.JoinedStr: "strings are",
    ast.List: "lists are",
    ast.Tuple: "tuples are",
    ast.Dict: "dicts are",
    ast.Set: "sets are",
    ast.Starred: "starred arguments are",
    ast.Await: "await is",
    ast.Yield: "yield is",
    ast.YieldFrom: "yield is",
    ast.Slice: "slices are",
}


# -- evaluation ------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, source: str, deadline: float) -> None:
        self.source = source
        self.deadline = deadline

    def eval(self, node: ast.expr) -> Number:
        if time.monotonic() > self.deadline:
            raise CalculatorError("the calculation took too long")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left), self.eval(node.right)
            return _checked(_binary(node.op, left, right))
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            name = _OPERATOR_NAMES.get(type(node.op), type(node.op).__name__)
            raise CalculatorError(f"operator `{name}` is not allowed")
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            hint = " (it is a function; call it)" if node.id in FUNCTIONS else ""
            raise CalculatorError(f"unknown name `{node.id}`{hint}")
        if isinstance(node, ast.Call):
            return self.call(node)
        what = _REFUSED.get(type(node))
        if what is not None:
            raise CalculatorError(f"{what} not allowed")
        raise CalculatorError(f"`{type(node).__name__}` is not allowed")

    def constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, complex):
            raise CalculatorError("complex numbers are not allowed")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {type(value).__name__} literals")
        if isinstance(value, int):
            return _checked(Fraction(value))
        text = ast.get_source_segment(self.source, node)
        return _checked(_literal(text) if text else Fraction(value))

    def call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name):
            raise CalculatorError("only calls of the listed functions by name are allowed")
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise CalculatorError(f"function `{name}` is not allowed")
        if node.keywords:
            raise CalculatorError(f"{name}() takes no keyword arguments")
        count, low, high = len(node.args), function.min_args, function.max_args
        if count < low or (high is not None and count > high):
            if high is None:
                wanted = f"at least {low}"
            else:
                wanted = str(low) if low == high else f"{low} to {high}"
            raise CalculatorError(f"{name}() takes {wanted} argument(s), got {count}")
        args = [self.eval(arg) for arg in node.args]
        try:
            return _checked(function.call(*args))
        except CalculatorError:
            raise
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except (ValueError, OverflowError, TypeError) as exc:
            raise CalculatorError(f"{name}: {exc}") from None


# -- rendering -------------------------------------------------------------------------


def _exact_text(value: Fraction) -> str:
    """An integer, a terminating decimal, or ``p/q``."""
    num, den = value.numerator, value.denominator
    if den == 1:
        return str(num)
    twos = (den & -den).bit_length() - 1
    rest, fives = den >> twos, 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    places = max(twos, fives)
    if rest != 1 or num.bit_length() * 0.302 + places > MAX_DECIMAL_DIGITS:
        return f"{num}/{den}"
    scaled = abs(num) * 10**places // den
    digits = str(scaled).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return f"-{text}" if num < 0 else text


def _approximate(value: Fraction) -> str:
    with localcontext() as context:
        context.prec = APPROX_DIGITS
        return str(Decimal(value.numerator) / Decimal(value.denominator))
