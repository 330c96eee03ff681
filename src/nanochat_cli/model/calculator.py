"""The calculator tool the model calls between <|python_start|> and <|python_end|>.

Model text is never passed to `eval`: the expression is parsed with `ast` and only numbers, string
literals, + - * / // % ** and parentheses, and `"literal".count("x")` (nanochat's SpellingBee tool use) are
evaluated. Exponents and results are bounded so `9**9**9` cannot freeze the process. Anything else
returns None and the engine forces no output.
"""

from __future__ import annotations

import ast
import math
import operator

MAX_EXPR_CHARS = 200
MAX_ABS_RESULT = 1e15
MAX_EXPONENT = 64
MAX_STRING_CHARS = 1000

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class _Refused(Exception):
    pass


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if len(node.value) > MAX_STRING_CHARS:
            raise _Refused
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        v = _eval(node.operand)
        if isinstance(v, str):
            raise _Refused
        return _UNARY[type(node.op)](v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(a, str) or isinstance(b, str):
            raise _Refused
        if isinstance(node.op, ast.Pow) and (abs(b) > MAX_EXPONENT or abs(a) > MAX_ABS_RESULT):
            raise _Refused
        try:
            out = _BINOPS[type(node.op)](a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            raise _Refused from None
        if isinstance(out, complex) or (isinstance(out, (int, float)) and abs(out) > MAX_ABS_RESULT):
            raise _Refused
        return out
    # "strawberry".count("r"): a method call on a string literal, one string-literal argument, nothing else
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "count"
            and not node.keywords and len(node.args) == 1):
        target, arg = _eval(node.func.value), _eval(node.args[0])
        if isinstance(target, str) and isinstance(arg, str):
            return target.count(arg)
    raise _Refused


def calculate(expr: str) -> str | None:
    """The result as text (integers without '.0'), or None when the expression is not allowed."""
    if not expr or len(expr) > MAX_EXPR_CHARS:
        return None
    try:
        value = _eval(ast.parse(expr.strip().replace(",", ""), mode="eval"))
    except (_Refused, SyntaxError, RecursionError, ValueError, TypeError):
        return None
    if isinstance(value, str):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return str(int(value))
        return f"{value:.6g}"
    return str(value)
