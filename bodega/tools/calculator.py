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
import re
import time
from decimal import Decimal, localcontext
from fractions import Fraction

import msgspec

from .calc_math import (
    CONSTANTS,
    FUNCTIONS,
    MAX_BITS,
    OPERATOR_NAMES,
    CalculatorError,
    Number,
    binary,
    checked,
)

MAX_LENGTH = 1000
MAX_NODES = 500
MAX_DEPTH = 100
MAX_DECIMAL_DIGITS = 4000  # longer terminating decimals are shown as p/q
APPROX_DIGITS = 30
TIME_BUDGET = 1.0

_DECIMAL = re.compile(r"^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


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
            return checked(binary(node.op, left, right))
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            name = OPERATOR_NAMES.get(type(node.op), type(node.op).__name__)
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
            return checked(Fraction(value))
        text = ast.get_source_segment(self.source, node)
        return checked(_literal(text) if text else Fraction(value))

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
            return checked(function.call(*args))
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
