"""A safe calculator: the expression is parsed with ``ast`` and walked; nothing is evaluated by Python.

Numbers are exact where it matters: integer and decimal literals become ``Fraction``s, so
``0.1 + 0.2`` is ``0.3`` and ``1/3*3`` is ``1``; irrational functions (``sqrt(2)``, ``sin``) and
fractional powers fall back to floats. Only arithmetic, comparisons and an allowlist of functions
and constants from ``math`` are understood. Limits on input length, nesting depth, node count,
exponent size and integer size keep every evaluation small and fast.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import Annotated, Any

from pydantic import Field

from .registry import Tool, ToolError, function_tool

Number = Fraction | float


class CalculatorError(ToolError):
    """The expression is not allowed or cannot be computed; the message says why."""


@dataclass(frozen=True)
class CalcLimits:
    """What an expression may cost; beyond any of these it is refused with a CalcError, not computed.

    Each bound stops a way a short expression can take a long time or a lot of memory (deep nesting,
    huge powers, huge factorials, long chains).
    """

    max_length: int = 1000
    #: Nesting of brackets.
    max_depth: int = 40
    max_nodes: int = 1000
    #: Depth of the parsed tree (``1+2+…`` is a chain, deeper than its brackets).
    max_tree_depth: int = 250
    #: The largest integer (numerator or denominator) any step may produce, in decimal digits.
    max_digits: int = 1000
    max_factorial: int = 450  # 450! has 1001 digits


DEFAULT_LIMITS = CalcLimits()

CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_FLOAT_FUNCS: dict[str, Callable[..., float]] = {
    name: getattr(math, name)
    for name in (
        "exp",
        "log2",
        "log10",
        "log1p",
        "expm1",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "degrees",
        "radians",
        "hypot",
    )
}
_INT_FUNCS = ("factorial", "comb", "perm", "gcd", "lcm", "isqrt")
FUNCTIONS = sorted(
    [*_FLOAT_FUNCS, *_INT_FUNCS, "sqrt", "log", "abs", "round", "floor", "ceil", "trunc", "min", "max", "pow"]
)

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_BITOPS: dict[type, Callable[[int, int], int]] = {
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}

# Names for the node kinds people (and attackers) try, so the refusal says what was seen.
_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "star arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.IfExp: "conditional expressions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Slice: "slices",
}


def _digits(n: int) -> int:
    """Decimal digits of |n| (within one), from its bit length: no big conversion to text."""
    return int(abs(n).bit_length() * 0.30103) + 1


class Calculator:
    """Evaluates arithmetic expressions safely; ``evaluate`` gives the value, ``__call__`` the text."""

    def __init__(self, limits: CalcLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def __call__(self, expression: str) -> str:
        return format_number(self.evaluate(expression))

    def evaluate(self, expression: str) -> Number | bool:
        """The value of ``expression``; raises ``CalculatorError`` with a reason for anything else."""
        lim = self.limits
        if not isinstance(expression, str):
            raise CalculatorError("the expression must be text")
        if len(expression) > lim.max_length:
            raise CalculatorError(f"the expression is {len(expression)} characters long; the limit is {lim.max_length}")
        if not expression.strip():
            raise CalculatorError("the expression is empty")
        # Checked before parsing: CPython's parser itself recurses on nesting and may fail badly.
        depth = 0
        for ch in expression:
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth > lim.max_depth:
                raise CalculatorError(f"the expression nests deeper than {lim.max_depth} levels")
        source = expression.strip()
        try:
            with warnings.catch_warnings():  # "invalid decimal literal" and friends: the error says it
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as e:
            raise CalculatorError(f"not a valid expression: {e.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise CalculatorError("the expression is too complex to parse") from None
        nodes = 0
        for node in ast.walk(tree):
            nodes += 1
            if nodes > lim.max_nodes:
                raise CalculatorError(f"the expression has more than {lim.max_nodes} parts")
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                # Read the literal as typed: 0.1 is exactly 1/10 and 1e-400 is not 0.0.
                node.exact = self._decimal(ast.get_source_segment(source, node) or repr(node.value))  # type: ignore[attr-defined]
        try:
            return self._eval(tree.body, 0)
        except CalculatorError:
            raise
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("the result is too large") from None
        except (ValueError, TypeError) as e:  # math domain errors, a float where an integer is needed
            raise CalculatorError(f"cannot compute: {e}") from None

    # -- the walk -------------------------------------------------------------------------------
    def _eval(self, node: ast.AST, depth: int) -> Any:
        if depth > self.limits.max_tree_depth:
            raise CalculatorError(f"the expression nests deeper than {self.limits.max_tree_depth} levels")
        d = depth + 1
        if isinstance(node, ast.Constant):
            exact = getattr(node, "exact", None)
            return exact if exact is not None else self._constant(node.value)
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise CalculatorError(f"names starting with '_' are not allowed ({node.id!r})")
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            hint = " (functions need parentheses)" if node.id in FUNCTIONS else ""
            raise CalculatorError(f"unknown name {node.id!r}{hint}; constants: {', '.join(CONSTANTS)}")
        if isinstance(node, ast.UnaryOp):
            v = self._number(self._eval(node.operand, d))
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            if isinstance(node.op, ast.Not):
                return not v
            return ~self._int(v, "~")
        if isinstance(node, ast.BinOp):
            a = self._number(self._eval(node.left, d))
            b = self._number(self._eval(node.right, d))
            return self._check(self._binop(node.op, a, b))
        if isinstance(node, ast.Compare):
            left = self._number(self._eval(node.left, d))
            for op, right_node in zip(node.ops, node.comparators, strict=False):
                if type(op) not in _CMPOPS:
                    raise CalculatorError(f"the comparison {type(op).__name__} is not allowed")
                right = self._number(self._eval(right_node, d))
                if not _CMPOPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = [self._eval(v, d) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Call):
            return self._check(self._call(node, d))
        what = _REFUSED.get(type(node), type(node).__name__)
        raise CalculatorError(f"not allowed in a calculator expression: {what}")

    def _constant(self, value: Any) -> Number | bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return self._check(Fraction(value))
        if isinstance(value, complex):
            raise CalculatorError("complex numbers are not supported")
        if isinstance(value, str):
            raise CalculatorError("text (strings) is not allowed in a calculator expression")
        raise CalculatorError(f"{type(value).__name__} literals are not allowed")

    def _decimal(self, text: str) -> Fraction:
        try:
            dec = Decimal(text.replace("_", ""))
        except InvalidOperation:
            raise CalculatorError(f"bad number {text!r}") from None
        if abs(dec.adjusted()) > self.limits.max_digits:
            raise CalculatorError(f"the number {text!r} has more than {self.limits.max_digits} digits")
        return self._check(Fraction(dec))

    def _number(self, v: Any) -> Number:
        if isinstance(v, bool):
            return Fraction(int(v))
        return v

    def _int(self, v: Number, what: str) -> int:
        if isinstance(v, Fraction) and v.denominator == 1:
            return v.numerator
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise CalculatorError(f"{what} needs whole numbers, got {format_number(v)}")

    def _check(self, v: Any) -> Any:
        lim = self.limits.max_digits
        if isinstance(v, int) and not isinstance(v, bool):
            v = Fraction(v)
        if isinstance(v, Fraction):
            if _digits(v.numerator) > lim or _digits(v.denominator) > lim:
                raise CalculatorError(f"the result has more than {lim} digits")
        elif isinstance(v, float) and not math.isfinite(v):
            raise CalculatorError("the result is too large" if math.isinf(v) else "the result is not a number")
        elif isinstance(v, complex):
            raise CalculatorError("the result is a complex number, which is not supported")
        return v

    def _binop(self, op: ast.operator, a: Number, b: Number) -> Any:
        if type(op) in _BINOPS:
            return _BINOPS[type(op)](a, b)
        if isinstance(op, ast.Pow):
            return self._pow(a, b)
        if isinstance(op, (ast.LShift, ast.RShift)):
            x, n = self._int(a, "a shift"), self._int(b, "a shift")
            if n < 0:
                raise CalculatorError("a negative shift count is not allowed")
            if isinstance(op, ast.RShift):
                return x >> n
            if x and x.bit_length() + n > self.limits.max_digits * 3.33:
                raise CalculatorError(f"the result has more than {self.limits.max_digits} digits")
            return x << n
        if type(op) in _BITOPS:
            return _BITOPS[type(op)](self._int(a, "a bitwise operator"), self._int(b, "a bitwise operator"))
        raise CalculatorError(f"the operator {type(op).__name__} (e.g. @) is not allowed")

    def _pow(self, a: Number, b: Number) -> Number:
        if isinstance(b, Fraction) and b.denominator == 1 and isinstance(a, Fraction):
            n = b.numerator
            size = max(abs(a.numerator).bit_length(), abs(a.denominator).bit_length())
            # |a**n| has about size*|n| bits; refuse before computing, not after.
            if size > 1 and (size - 1) * abs(n) * 0.30103 > self.limits.max_digits:
                raise CalculatorError(f"the result has more than {self.limits.max_digits} digits")
            if a == 0 and n < 0:
                raise ZeroDivisionError
            return a**n
        fa, fb = float(a), float(b)
        if fa < 0 and not fb.is_integer():
            raise CalculatorError("a negative number to a fractional power is complex; not supported")
        return math.pow(fa, fb)

    def _call(self, node: ast.Call, d: int) -> Any:
        if not isinstance(node.func, ast.Name):
            what = _REFUSED.get(type(node.func), "an expression")
            raise CalculatorError(f"only named functions can be called, not {what}")
        name = node.func.id
        if name not in FUNCTIONS:
            raise CalculatorError(f"unknown function {name!r}; allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise CalculatorError(f"{name}() takes positional arguments only")
        if len(node.args) > 10:
            raise CalculatorError(f"{name}() got too many arguments")
        args = [self._number(self._eval(a, d)) for a in node.args]
        if name in _FLOAT_FUNCS:
            return _FLOAT_FUNCS[name](*(float(x) for x in args))
        if name in _INT_FUNCS:
            ints = [self._int(x, f"{name}()") for x in args]
            if name in ("factorial", "comb", "perm") and ints and max(ints) > self.limits.max_factorial:
                raise CalculatorError(f"{name}() is limited to arguments up to {self.limits.max_factorial}")
            return getattr(math, name)(*ints)
        if name == "sqrt":
            (x,) = _arity(name, args, 1)
            if isinstance(x, Fraction) and x >= 0:
                rn, rd = math.isqrt(x.numerator), math.isqrt(x.denominator)
                if rn * rn == x.numerator and rd * rd == x.denominator:
                    return Fraction(rn, rd)  # exact for perfect squares
            return math.sqrt(float(x))
        if name == "log":
            if not 1 <= len(args) <= 2:
                raise CalculatorError("log() takes a number and an optional base")
            return math.log(*(float(x) for x in args))
        if name == "pow":
            a, b = _arity(name, args, 2)
            return self._pow(a, b)
        if name == "abs":
            (x,) = _arity(name, args, 1)
            return abs(x)
        if name in ("floor", "ceil", "trunc"):
            (x,) = _arity(name, args, 1)
            return Fraction(getattr(math, name)(x))
        if name == "round":
            if not 1 <= len(args) <= 2:
                raise CalculatorError("round() takes a number and optional digits")
            if len(args) == 1:
                return Fraction(round(args[0]))
            digits = self._int(args[1], "round()'s digits")
            if abs(digits) > self.limits.max_digits:
                raise CalculatorError(f"round() digits must be within ±{self.limits.max_digits}")
            return round(args[0], digits)
        # min, max
        if not args:
            raise CalculatorError(f"{name}() needs at least one number")
        return (min if name == "min" else max)(args)


def _arity(name: str, args: list[Number], n: int) -> list[Number]:
    if len(args) != n:
        raise CalculatorError(f"{name}() takes {n} argument{'s' if n > 1 else ''}, got {len(args)}")
    return args


#: The longest ``numerator/denominator`` shown beside an approximated result; longer ones would
#: only flood the model's context.
EXACT_FRACTION_CHARS = 200


def format_number(v: Number | bool) -> str:
    """Text for a result: integers in full, terminating fractions as exact decimals, others approximated."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if v.denominator == 1:
        return str(v.numerator)
    twos = fives = 0
    d = v.denominator
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    k = max(twos, fives)
    if d == 1 and k <= DEFAULT_LIMITS.max_digits:  # a terminating decimal of sensible length: exactly
        whole, frac = divmod(abs(v.numerator) * 10**k // v.denominator, 10**k)
        return f"{'-' if v < 0 else ''}{whole}.{frac:0{k}d}"
    exact = f"{v.numerator}/{v.denominator}"
    exactly = f" (exactly {exact})" if len(exact) <= EXACT_FRACTION_CHARS else ""
    try:
        approx = float(v)
    except OverflowError:
        approx = math.inf
    if approx == 0 or math.isinf(approx):  # beyond a float's range: 17 significant digits in Decimal
        with localcontext() as ctx:
            ctx.prec = 17
            return f"{Decimal(v.numerator) / Decimal(v.denominator)}{exactly}"
    return f"{approx!r}{exactly}"


_default = Calculator()


def calculate(expression: Annotated[str, Field(min_length=1, max_length=DEFAULT_LIMITS.max_length)]) -> str:
    """Evaluate an arithmetic expression exactly and return the result as text.

    Supports numbers, + - * / // % ** (power), parentheses, comparisons, and the functions sqrt,
    log(x, base), exp, sin, cos, tan, floor, ceil, round(x, digits), abs, min, max, factorial, comb,
    gcd and more, with the constants pi, e and tau. Decimal arithmetic is exact (0.1 + 0.2 = 0.3).

    Args:
        expression: the expression, e.g. "(3 + 4.5) * 2 / 7" or "sqrt(2) * pi"
    """
    return _default(expression)


def calculator_tool(name: str = "calculator") -> Tool:
    """The calculator as a registry ``Tool``."""
    return function_tool(calculate, name=name, timeout=5.0)
