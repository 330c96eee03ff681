"""The calculator tool: a safe evaluator for the expressions a model writes between python_start/python_end.

Model text is never given to `eval`: it is parsed with `ast` and walked, allowing only numbers, the
operators + - * / // % ** and unary ±, parentheses, and `"literal".count("literal")` (nanochat's
SpellingBee teaches letter counting this way). Sizes are bounded before any arithmetic runs: 256
characters of input, exponents of at most 4,096 bits of result (`2**4096` is fine, `9**9**9` is refused
at once rather than hanging the chat for minutes), intermediate ints of at most 1,000 digits. Anything
else (names, attributes other than .count, calls, subscripts, lambdas, comprehensions) gives None,
which the engine turns into no output at all. It does not do variables, functions or floats' repr tricks.
"""

from __future__ import annotations

import ast
import math
import operator

MAX_CHARS = 256
MAX_INT_DIGITS = 1000
MAX_POW_BITS = 4096  # a result of 2**4096 has 1,234 digits: the largest power we compute
MAX_STR = 1000

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}


class CalculatorError(ValueError):
    """The expression is not allowed or too large; the engine answers nothing."""


def _check_number(x):
    if isinstance(x, bool):
        raise CalculatorError("booleans are not numbers here")
    if isinstance(x, int) and x and abs(x).bit_length() > MAX_INT_DIGITS * 3.33:
        raise CalculatorError("number too large")
    if isinstance(x, float) and not math.isfinite(x):
        raise CalculatorError("not a finite number")
    return x


def _pow(base, exp):
    if isinstance(exp, float) or isinstance(base, float):
        if abs(exp) > 1000:
            raise CalculatorError("exponent too large")
        return float(base) ** float(exp)
    if exp < 0:
        return float(base) ** exp if base else _fail("0 to a negative power")
    bits = max(abs(base).bit_length(), 1)
    if abs(base) > 1 and bits * exp > MAX_POW_BITS:  # the result would have bits·exp bits: refuse first
        raise CalculatorError("power too large")
    return base ** exp


def _fail(why: str):
    raise CalculatorError(why)


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _check_number(node.value)
        if isinstance(node.value, str):
            if len(node.value) > MAX_STR:
                raise CalculatorError("string too long")
            return node.value
        raise CalculatorError(f"constant {type(node.value).__name__} not allowed")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        if isinstance(v, str):
            raise CalculatorError("sign of a string")
        return _check_number(+v if isinstance(node.op, ast.UAdd) else -v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(a, str) or isinstance(b, str):
            raise CalculatorError("arithmetic on strings is not allowed")
        try:
            if isinstance(node.op, ast.Pow):
                return _check_number(_pow(a, b))
            return _check_number(_BINOPS[type(node.op)](a, b))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("overflow") from None
    if isinstance(node, ast.Call):
        f = node.func
        # Only "literal".count("literal"): the letter-counting tool call of SpellingBee.
        if (isinstance(f, ast.Attribute) and f.attr == "count" and isinstance(f.value, ast.Constant)
                and isinstance(f.value.value, str) and len(node.args) == 1 and not node.keywords
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            return _eval(f.value).count(_eval(node.args[0]))
        raise CalculatorError("only \"text\".count(\"x\") calls are allowed")
    raise CalculatorError(f"{type(node).__name__} is not allowed")


def evaluate(expr: str):
    """The value of `expr` (int, float or, for .count, int), or raise CalculatorError."""
    if len(expr) > MAX_CHARS:
        raise CalculatorError("expression too long")
    expr = expr.strip().replace(",", "") if '"' not in expr and "'" not in expr else expr.strip()
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError("not an expression") from None
    try:
        return _eval(tree)
    except RecursionError:
        raise CalculatorError("too deeply nested") from None


def format_result(value) -> str:
    """How a result is shown to the model: whole numbers without ".0" (as the training data writes them,
    e.g. 48/4 -> "12"), other floats rounded to 6 significant decimals."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def calculate(expr: str) -> str | None:
    """The text the engine forces after python_end, or None when the expression is refused."""
    try:
        return format_result(evaluate(expr))
    except CalculatorError:
        return None
