"""Endpoint filters: CEL expressions over an event, checked when saved and evaluated at emit.

A filter sees four variables: `type` (the event type's name), `data` (the payload), `tenant` (the
tenant's slug) and `timestamp` (the event's time as sent, ISO 8601 in UTC). An endpoint gets an
event only when its filter evaluates to exactly `true`. Any other value, or an error at run time
(a missing field, a type mismatch), is no match; the error is logged once per endpoint per hour
(in each process).

Filters run inside the host's emit, so what they may cost is bounded when they are saved: at
most MAX_FILTER_LENGTH characters (the parser recurses, and much deeper input overflows its
stack), no `map()` or `filter()` (their cost grows with the square of the list's length in this
CEL implementation), and no comprehension inside another (the product of two lists' lengths).
What remains costs at most in proportion to the expression's length times the payload's size.
Compiled programs are cached by their text; an event's variables are converted to CEL once and
shared by every filter evaluated against it (about 0.4 µs a filter, against 6 to 14 µs when each
evaluation converts them again).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import cel

logger = logging.getLogger(__name__)

FILTER_VARIABLES = ("type", "data", "tenant", "timestamp")
MAX_FILTER_LENGTH = 2000
# CEL's type names, which a filter may compare with type(…): `type(data.amount) == int`.
_TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map",
                         "null_type"})  # fmt: skip
# The functions and macros the installed CEL library defines (tests/subscriptions/test_filters.py
# checks each one): a name outside them would fail every evaluation, so it is refused when saved.
FILTER_FUNCTIONS = frozenset({
    "has", "size", "contains", "startsWith", "endsWith", "matches",
    "int", "uint", "double", "string", "bytes", "dyn", "type", "timestamp", "duration",
    "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours",
    "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
    "all", "exists", "exists_one",
})  # fmt: skip
_COMPREHENSIONS = frozenset({"all", "exists", "exists_one"})
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_LIST_BUILDERS = frozenset({"map", "filter"})
# Errors at run time are logged once per endpoint in this long (seconds), per process.
LOG_EVERY = 3600.0
_LOGGED_MAX = 10_000
_ERROR_MAX = 200


class FilterError(ValueError):
    """A filter that cannot be saved, with the reason (and its position, when it has one)."""


@dataclass(frozen=True)
class FilterContext:
    """One event as filters see it: its variables converted to CEL once, for every filter."""

    event_type: str
    variables: cel.Context | None
    problem: str = ""  # why the variables could not be converted (then nothing matches)


class FilterOutcome(NamedTuple):  # a tuple: made for every filter of every event
    matched: bool
    error: str = ""  # why the filter could not be evaluated: no match


def filter_checked(expression: str) -> cel.Program:
    """The compiled filter; raises FilterError saying what is wrong, and where, when it is not
    one Hookline would evaluate. Compiled programs are cached by their text."""
    compiled = _compiled(expression)
    if isinstance(compiled, str):
        raise FilterError(compiled)
    return compiled


def filter_problem(expression: str) -> str | None:
    """Why `expression` cannot be an endpoint's filter, or None when it can (blank: no filter)."""
    if expression == "":
        return None
    try:
        filter_checked(expression)
    except FilterError as error:
        return str(error)
    return None


def filter_context(*, event_type: str, data: Any, tenant: str, timestamp: str) -> FilterContext:
    """The variables of one event, converted to CEL once and shared by every filter."""
    variables = {"type": event_type, "data": data, "tenant": tenant, "timestamp": timestamp}
    try:
        return FilterContext(event_type, cel.Context(variables))
    except (ValueError, TypeError):
        pass
    # Integers past what CEL holds even as a double (10**400) are the one JSON value it refuses.
    try:
        return FilterContext(event_type, cel.Context({**variables, "data": _numbers_fitted(data)}))
    except (ValueError, TypeError, RecursionError) as error:
        return FilterContext(event_type, None, problem=f"the payload cannot be read: {error}")


def filter_evaluate(program: cel.Program, context: FilterContext) -> FilterOutcome:
    """Evaluate a compiled filter: a match only when it evaluates to exactly `true`."""
    if context.variables is None:
        return FilterOutcome(False, context.problem)
    try:
        result = program.execute(context.variables)
    except Exception as error:
        return FilterOutcome(False, _evaluation_error(error))
    except BaseException as error:  # a panic inside the CEL library, raised as BaseException
        if not _is_panic(error):
            raise
        return FilterOutcome(False, _evaluation_error(error))
    return FilterOutcome(result is True)


def endpoints_matching(candidates: Iterable[tuple[int, str]], context: FilterContext) -> list[int]:
    """The ids of the endpoints, given as `(id, filter)`, whose filter matches the event.

    Each distinct expression is evaluated once. A filter that cannot be compiled (stored before
    a check refused it) or fails at run time is no match, logged once per endpoint per hour.
    """
    outcomes: dict[str, FilterOutcome] = {}
    matched = []
    for endpoint_id, expression in candidates:
        outcome = outcomes.get(expression)
        if outcome is None:
            outcome = outcomes[expression] = _outcome(expression, context)
        if outcome.matched:
            matched.append(endpoint_id)
        elif outcome.error:
            _log_failure(endpoint_id, context.event_type, outcome.error)
    return matched


def _outcome(expression: str, context: FilterContext) -> FilterOutcome:
    compiled = _compiled(expression)
    if isinstance(compiled, str):
        return FilterOutcome(False, compiled)
    return filter_evaluate(compiled, context)


_logged_at: dict[int, float] = {}


def _log_failure(endpoint_id: int, event_type: str, error: str) -> None:
    now = time.monotonic()
    last = _logged_at.get(endpoint_id)
    if last is not None and now - last < LOG_EVERY:
        return
    if len(_logged_at) >= _LOGGED_MAX:
        for stale in [key for key, at in _logged_at.items() if now - at >= LOG_EVERY]:
            del _logged_at[stale]
    _logged_at[endpoint_id] = now
    logger.warning(
        "Filter of endpoint %s failed on event type %s, which counts as no match: %s "
        "(logged once an hour per endpoint)",
        endpoint_id,
        event_type,
        error,
    )


def _evaluation_error(error: BaseException) -> str:
    message = str(error).split("\n", 1)[0]
    if len(message) > _ERROR_MAX:  # it may quote a long value, such as a regular expression
        message = message[:_ERROR_MAX] + "…"
    if isinstance(error, KeyError):
        return f"missing field {message}"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _is_panic(error: BaseException) -> bool:
    return type(error).__name__ == "PanicException"


def _numbers_fitted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _numbers_fitted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_fitted(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**64:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


# --- Checking and compiling ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> cel.Program | str:
    """The program, or the reason it is refused (cached too, so a bad stored filter is not
    compiled again for every event)."""
    problem = _text_problem(expression)
    if problem is not None:
        return problem
    try:
        program = cel.compile(expression)
    except Exception as error:
        return _syntax_problem(str(error))
    except BaseException as error:
        if not _is_panic(error):
            raise
        return "The filter is not valid CEL."
    return _usage_problem(expression, program) or program


def _text_problem(expression: str) -> str | None:
    if len(expression) > MAX_FILTER_LENGTH:
        return (
            f"The filter is {len(expression):,} characters long; "
            f"the limit is {MAX_FILTER_LENGTH:,}."
        )
    if "\x00" in expression:
        return "The filter cannot contain the NUL character."
    try:
        expression.encode()
    except UnicodeEncodeError:
        return "The filter holds an unpaired surrogate (such as \\ud800), which is not text."
    if not expression.strip():
        return "The filter is blank; leave it empty for every event."
    return None


# The parser reports `ERROR: <input>:LINE:COLUMN: message`, columns counted in characters from 1.
_PARSER_ERROR = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")


def _syntax_problem(message: str) -> str:
    found = _PARSER_ERROR.search(message)
    if found is None:
        return "The filter is not valid CEL."
    line, column, reason = found.groups()
    # "mismatched input '<EOF>' expecting {'[', '{', …}": the parser's grammar, not the reader's.
    reason = _EXPECTING.sub("", reason.removeprefix("Syntax error: "))
    reason = _UNEXPECTED.sub("unexpected ", reason).replace("unexpected '<EOF>'", "unexpected end")
    reason = reason.replace("'<EOF>'", "the end").replace("<EOF>", "the end")
    return f"line {line}, column {column}: {reason}"


_EXPECTING = re.compile(r" expecting \{.*\}$")
_UNEXPECTED = re.compile(r"^(?:mismatched|extraneous) input ")


def _usage_problem(expression: str, program: cel.Program) -> str | None:
    """What the parser accepts but a filter may not use: unknown names, or costly macros."""
    tokens = _tokens(expression)
    problem = _names_problem(expression, tokens)
    if problem is not None:
        return problem
    # A second opinion from the compiled program, for anything the scan above did not see.
    references = program.references()
    bound = _bound_names(tokens)
    for name in references["variables"]:
        if name not in FILTER_VARIABLES and name not in _TYPE_NAMES and name not in bound:
            return _unknown_variable(name)
    for name in references["functions"]:
        if name.isidentifier() and not name.startswith("_") and name not in FILTER_FUNCTIONS:
            return f"unknown function {name!r}."
    return None


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "string", "number" or "symbol"
    text: str
    offset: int


_TOKEN = re.compile(
    r"""
    (?P<skip>\s+|//[^\n]*)
    | (?P<string>
        (?:[rR][bB]?|[bB][rR])(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"[^"\n]*"|'[^'\n]*')
      | [bB]?(?:\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"|'''(?:\\[\s\S]|[^\\])*?'''
                |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d*\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<symbol>[\s\S])
    """,
    re.VERBOSE,
)


def _tokens(expression: str) -> list[_Token]:
    """The tokens of an expression the parser accepted (comments and spaces left out)."""
    return [
        _Token(found.lastgroup or "symbol", found.group(), found.start())
        for found in _TOKEN.finditer(expression)
        if found.lastgroup != "skip"
    ]


@dataclass
class _Open:
    bracket: str
    comprehension: bool = False
    bound: str = ""  # the variable a comprehension binds, in scope inside its parentheses


def _names_problem(expression: str, tokens: list[_Token]) -> str | None:
    """Unknown variables and functions, `map()` and `filter()`, and nested comprehensions."""
    opened: list[_Open] = []
    comprehension = ""  # a comprehension's name, until its parenthesis opens
    for index, token in enumerate(tokens):
        before = tokens[index - 1].text if index else ""
        after = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if token.kind == "symbol":
            if token.text in "([{":
                opened.append(_Open(token.text))
                if comprehension:
                    opened[-1].comprehension = True
                    opened[-1].bound = _bound_name(tokens, index)
                    comprehension = ""
            elif token.text in ")]}" and opened:
                opened.pop()
            continue
        if token.kind != "name" or token.text in _KEYWORDS:
            continue
        where = _position(expression, token.offset)
        if after == "(":
            problem = _call_problem(token.text, before == ".", opened)
            if problem is not None:
                return f"{where}: {problem}"
            comprehension = token.text if before == "." and token.text in _COMPREHENSIONS else ""
        elif before != "." and not _known(token.text, opened):
            return f"{where}: {_unknown_variable(token.text)}"
    return None


def _call_problem(name: str, is_method: bool, opened: list[_Open]) -> str | None:
    if is_method and name in _LIST_BUILDERS:
        return (
            f"{name}() is not available in filters: it builds a list, which costs time that "
            "grows with the square of its length. Use exists(), all() or exists_one()."
        )
    if name not in FILTER_FUNCTIONS:
        return f"unknown function {name!r}."
    if name in _COMPREHENSIONS and not is_method:
        return f"{name}() is called on a list or map, as in data.items.{name}(item, …)."
    if is_method and name in _COMPREHENSIONS and any(o.comprehension for o in opened):
        return (
            f"{name}() inside another all(), exists() or exists_one() is not allowed: its cost "
            "grows with the product of two lists' lengths. Use `in` for a list inside each item, "
            'as in data.items.exists(i, "gift" in i.tags).'
        )
    return None


def _bound_names(tokens: list[_Token]) -> set[str]:
    return {
        _bound_name(tokens, index + 1)
        for index, token in enumerate(tokens[1:-1], start=1)
        if token.text in _COMPREHENSIONS
        and tokens[index - 1].text == "."
        and tokens[index + 1].text == "("
    } - {""}


def _bound_name(tokens: list[_Token], paren: int) -> str:
    """The variable named first in a comprehension's parentheses: `exists(item, …)`."""
    if paren + 2 < len(tokens) and tokens[paren + 2].text == ",":
        return tokens[paren + 1].text
    return ""


def _known(name: str, opened: list[_Open]) -> bool:
    return name in FILTER_VARIABLES or name in _TYPE_NAMES or any(o.bound == name for o in opened)


def _unknown_variable(name: str) -> str:
    return f"unknown variable {name!r}; a filter can use type, data, tenant and timestamp."


def _position(expression: str, offset: int) -> str:
    line = expression.count("\n", 0, offset) + 1
    column = offset - (expression.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"
