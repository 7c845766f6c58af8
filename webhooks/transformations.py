"""Payload transformations: a JSONata expression that reshapes the body an endpoint receives.

The expression reads the message Hookline would send, `{"type", "timestamp", "data"}`, and its
result is the body instead; the endpoint's payload format then encodes that result
(`body_of`). JSON carries any JSON value; XML and form fields need an object, whose members
become `<webhook>`'s children or the form's fields by the format's usual rules.

An expression is checked when saved (`transformation_problem`) and compiled once per process
and thread (a bounded cache by text). Each run is held to a budget that no expression can
escape, so a worker never hangs on one:
- time: BUDGET_SECONDS, checked at every evaluation step, and enforced by a watchdog thread
  that interrupts the evaluating thread where a single built-in function runs long (a sum over
  a million numbers is one step);
- depth: MAX_DEPTH nested steps (runaway recursion);
- size: every intermediate string and array, and the result, stay under MAX_TEXT_CHARS and
  MAX_ITEMS; `$pad` is refused a width past MAX_TEXT_CHARS before it allocates.
Regular expressions are refused when saved: Python's matcher cannot be interrupted, and one
pattern can backtrack for minutes. `$eval` is refused at run time: it would compile an
expression that was never checked.

The simplest shapes (an object of paths, literals and `&` joins) are evaluated directly, without
the library's machinery, where the message allows (webhooks.direct_transformations).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

# jsonata-python ships no type information.
from jsonata import Jsonata, jexception, utils  # type: ignore[import-untyped]
from jsonata.functions import Functions  # type: ignore[import-untyped]
from jsonata.regex_engine import RegexFlags  # type: ignore[import-untyped]

from webhooks.direct_transformations import Evaluation, NotDirect, direct_evaluation
from webhooks.formats import JSON, Body, FormatError, render_value

MAX_EXPRESSION_LENGTH = 10_000
BUDGET_SECONDS = 0.08
# Parsing some shapes takes time that grows with the square of their length (a path of 5,000
# steps takes seconds): an expression must compile within this, when saved and when first run.
COMPILE_BUDGET_SECONDS = 0.5
# Nested evaluation steps; each level of a recursive function takes about three. Python's own
# limit (10,000 frames, as jsonata sets it) is reached past 2,400.
MAX_DEPTH = 1000
MAX_TEXT_CHARS = 1_000_000  # per string while evaluating, and in all of the result
MAX_ITEMS = 100_000  # per array while evaluating, and values in all of the result
# How often the watchdog looks at running evaluations: a runaway is stopped at most this long
# after its budget ran out, so within 100 ms in all.
_WATCH_INTERVAL_SECONDS = 0.005
_COMPILED_CACHE_SIZE = 256


class TransformError(ValueError):
    """A transformation that cannot be compiled, ran out of its budget, failed, or gave a result
    the endpoint's payload format cannot carry. The message says which, for people."""


class _Stop(BaseException):
    """Ends a run from inside the library. A BaseException, so that no `except Exception` in the
    library can swallow it or turn it into an error of its own."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class _Interrupted(_Stop):
    """Raised in an evaluating thread by the watchdog, or after it, once the deadline passed."""


class _RegexRefused(Exception):
    pass


def transformation_problem(expression: str) -> str | None:
    """Why `expression` cannot be saved as a transformation, or None if it can (blank included).

    The message names the position of a syntax error, counted from 1.
    """
    if not expression:
        return None
    if len(expression) > MAX_EXPRESSION_LENGTH:
        return f"A transformation is at most {MAX_EXPRESSION_LENGTH:,} characters long."
    if "\x00" in expression:
        return "A transformation cannot contain the NUL character."
    if any("\ud800" <= char <= "\udfff" for char in expression):
        return "A transformation cannot contain unpaired surrogate characters."
    if not expression.strip():
        return "A transformation cannot be only spaces; leave it empty for none."
    try:
        _compile(expression)
    except TransformError as error:
        return str(error)
    return None


def transform(expression: str, message: dict[str, Any]) -> Any:
    """The value `expression` makes of `message`, as plain JSON values (dict, list, str, int,
    float, bool, None for null); raises TransformError, within the budget, for anything else."""
    compiled, environment, direct = _compiled(expression)
    if direct is not None:
        try:
            return _plain(direct(message))
        except NotDirect:
            pass  # this message needs the library's rules
        except _Stop as stop:
            raise TransformError(str(stop)) from None
    # A run keeps its innermost scope on the expression while it goes (and restores it on the way
    # out, but an interruption may land in that restore): each run starts from the scope that
    # compiling made, never from what a previous run, perhaps another tenant's, left there.
    compiled.environment, compiled.input = environment, None
    budget = _Budget()
    frame = compiled.create_frame(environment)
    frame.bind("__evaluate_entry", budget.on_entry)
    frame.bind("__evaluate_exit", budget.on_exit)
    frame.bind("eval", _EVAL_REFUSED)
    frame.bind("pad", _BOUNDED_PAD)
    # The library keeps a run's state, and the time $now() gives, on the thread's "current"
    # expression; compiled expressions are per thread, so this one can be it.
    Jsonata.CURRENT.jsonata = compiled
    try:
        with _watchdog.watching(budget):
            return _plain(compiled.evaluate(message, frame))
    except _Interrupted:
        raise TransformError(_out_of_time()) from None
    except _Stop as stop:
        raise TransformError(str(stop)) from None
    except jexception.JException as error:
        raise TransformError(f"The transformation failed: {_jsonata_message(error)}") from None
    except RecursionError:
        raise TransformError(_too_deep()) from None
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
        raise TransformError(f"The transformation failed: {problem}") from None


def body_of(expression: str, message: dict[str, Any], payload_format: str = JSON) -> Body:
    """The body of `message` transformed by `expression`, encoded in `payload_format`; raises
    TransformError when the transformation fails or its result does not fit the format."""
    value = transform(expression, message)
    try:
        return render_value(payload_format, value)
    except FormatError as error:
        raise TransformError(f"The transformation's result cannot be sent: {error}") from None


# --- Compiling --------------------------------------------------------------------------------


def _compiled(expression: str) -> tuple[Jsonata, Any, Evaluation | None]:
    """The compiled expression, its top scope and its direct evaluation if it has one
    (webhooks.direct_transformations), from this thread's cache: a compiled expression keeps
    state while it runs, so threads do not share one."""
    cache = getattr(_per_thread, "compile", None)
    if cache is None:
        cache = _per_thread.compile = functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)(_compile)
    return cache(expression)


_per_thread = threading.local()


def _compile(expression: str) -> tuple[Jsonata, Any, Evaluation | None]:
    with _collection_deferred():
        return _compile_now(expression)


def _compile_now(expression: str) -> tuple[Jsonata, Any, Evaluation | None]:
    try:
        with _watchdog.watching(_Clock(COMPILE_BUDGET_SECONDS)):
            compiled = Jsonata(expression, _refuse_regex)
    except _RegexRefused:
        raise TransformError(
            "Regular expressions are not available in transformations; "
            "use $contains, $split or $replace with a plain string."
        ) from None
    except jexception.JException as error:
        raise TransformError(f"Not a valid JSONata expression: {_jsonata_message(error)}") from None
    except RecursionError:
        raise TransformError("The expression is nested too deeply.") from None
    except _Stop:
        raise TransformError("The expression is too long or too complex to compile.") from None
    except Exception as error:  # the parser fails on some input with errors of its own
        symbol = f": unexpected {error.args[0]!r}" if isinstance(error, KeyError) else ""
        raise TransformError(f"Not a valid JSONata expression{symbol}.") from None
    compiled.set_validate_input(False)  # the input is parsed JSON, valid by construction
    compiled.set_output_convert_nulls(False)  # keep null apart from undefined
    try:
        direct = direct_evaluation(compiled.ast)
    except RecursionError:
        direct = None
    return compiled, compiled.environment, direct


@contextlib.contextmanager
def _collection_deferred() -> Iterator[None]:
    """No garbage collection while an expression compiles: a full collection in a process with
    a large heap takes longer than the whole compile budget, and would count against it. What
    compiling allocates is bounded by the expression's length."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _refuse_regex(pattern: str, flags: RegexFlags) -> Any:
    raise _RegexRefused


def _jsonata_message(error: jexception.JException) -> str:
    message = str(error).rstrip(".")
    if error.location is not None and error.location >= 0 and "position" not in message:
        return f"{message} (at position {error.location})."
    return f"{message}."


def _out_of_time() -> str:
    return (
        f"The transformation ran out of its {BUDGET_SECONDS * 1000:.0f} ms budget and was "
        "stopped: a loop, or too much work for one message?"
    )


def _too_deep() -> str:
    return f"The transformation nested deeper than {MAX_DEPTH} steps: a runaway recursion?"


# --- The budget -------------------------------------------------------------------------------


class _Clock:
    """A run's time: the processor time its thread spends, so that a run that only waited for
    the processor (a loaded machine, another thread holding the interpreter) is not stopped for
    it. Read cheaply through the wall clock: the thread's own clock, a system call, is read only
    once the wall clock says the budget may be spent."""

    __slots__ = ("cpu_clock", "cpu_limit", "deadline")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.cpu_clock = _thread_cpu_clock()
        self.cpu_limit = (
            time.clock_gettime(self.cpu_clock) + seconds if self.cpu_clock is not None else 0.0
        )

    def spent(self) -> bool:
        """Whether the budget is spent; moves the wall-clock deadline on by what is left."""
        now = time.monotonic()
        if now <= self.deadline:
            return False
        if self.cpu_clock is None:
            return True
        left = self.cpu_limit - time.clock_gettime(self.cpu_clock)
        if left <= 0:
            return True
        self.deadline = now + left
        return False


def _thread_cpu_clock() -> int | None:
    """The calling thread's processor-time clock, readable from other threads (None where the
    platform has none: the wall clock is used instead)."""
    clock = getattr(_per_thread, "cpu_clock", 0)
    if clock == 0:
        try:
            clock = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):
            clock = None
        _per_thread.cpu_clock = clock
    return clock


class _Budget(_Clock):
    """Time, depth and size checks at each evaluation step: the library calls `on_entry` and
    `on_exit` around every step, as its own Timebox does (with wall-clock time, and depth and
    time alone)."""

    __slots__ = ("depth",)

    def __init__(self) -> None:
        super().__init__(BUDGET_SECONDS)
        self.depth = 0

    def on_entry(self, expr: Any, input: Any, environment: Any) -> None:
        if environment.is_parallel_call:
            return
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Stop(_too_deep())
        if time.monotonic() > self.deadline and self.spent():
            raise _Interrupted

    def on_exit(self, expr: Any, input: Any, environment: Any, result: Any) -> None:
        if environment.is_parallel_call:
            return
        self.depth -= 1
        if isinstance(result, str):
            if len(result) > MAX_TEXT_CHARS:
                raise _Stop(_too_big())
        elif isinstance(result, list) and len(result) > MAX_ITEMS:
            raise _Stop(_too_big())
        if time.monotonic() > self.deadline and self.spent():
            raise _Interrupted


def _too_big() -> str:
    return (
        f"The transformation made a value larger than {MAX_TEXT_CHARS:,} characters "
        f"or {MAX_ITEMS:,} items, and was stopped."
    )


class _Refused:
    """A built-in function that transformations may not call."""

    def __init__(self, name: str, why: str) -> None:
        self.message = f"The transformation called ${name}, which transformations may not: {why}"

    def call(self, input: Any, args: Any) -> Any:
        raise _Stop(self.message)


class _BoundedPad:
    """$pad, refused a width whose string would be too large, before it is built."""

    def call(self, input: Any, args: Any) -> Any:
        string, width, char = [*args, None, None, None][:3]
        if isinstance(width, int | float) and abs(width) > MAX_TEXT_CHARS:
            raise _Stop(_too_big())
        return Functions.pad(string, width, char)


_EVAL_REFUSED = Jsonata.JFunction(
    _Refused("eval", "it would run an expression that was never checked."), "<sx?:x>"
)
_BOUNDED_PAD = Jsonata.JFunction(_BoundedPad(), "<s-ns?:s>")


class _Watchdog:
    """Interrupts a run that spends its budget, by raising _Interrupted in its thread, again at
    every look until the run ends: Python drops an exception raised where it cannot propagate
    (a garbage-collection callback, a finaliser).

    Python delivers such an exception between two bytecodes, so it stops a long loop inside a
    built-in function (a sum over a million numbers is one evaluation step) as well as in the
    expression. What runs in C for long (sorting a big list) is stopped when it returns. One
    daemon thread per process, started on first use, and again in a forked child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, _Clock] = {}  # by thread id
        self._interrupted: set[int] = set()
        self._pid = 0

    def watching(self, clock: _Clock) -> _Watch:
        if self._pid != os.getpid():
            self._start_thread()
        return _Watch(self, threading.get_ident(), clock)

    def begin(self, thread_id: int, clock: _Clock) -> None:
        with self._lock:
            self._watched[thread_id] = clock

    def end(self, thread_id: int) -> bool:
        """Stop watching the thread; True if the watchdog interrupted it meanwhile."""
        with self._lock:
            self._watched.pop(thread_id, None)
            if thread_id not in self._interrupted:
                return False
            self._interrupted.discard(thread_id)
            # Take back an interruption still pending, so that it cannot go off in whatever
            # the thread does next.
            _set_async_exception(thread_id, None)
            return True

    def _start_thread(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._watched.clear()
            self._interrupted.clear()
            name = "transformation-watchdog"
            threading.Thread(target=self._watch, name=name, daemon=True).start()
            self._pid = os.getpid()

    def _watch(self) -> None:
        while True:
            time.sleep(_WATCH_INTERVAL_SECONDS)
            if not self._watched:
                continue
            now = time.monotonic()
            # Under the lock, a watched thread is still in its run: its clock can be read.
            with self._lock:
                for thread_id, clock in self._watched.items():
                    if thread_id in self._interrupted or (clock.deadline < now and clock.spent()):
                        self._interrupted.add(thread_id)
                        _set_async_exception(thread_id, _Interrupted)


class _Watch:
    __slots__ = ("clock", "thread_id", "watchdog")

    def __init__(self, watchdog: _Watchdog, thread_id: int, clock: _Clock) -> None:
        self.watchdog = watchdog
        self.thread_id = thread_id
        self.clock = clock

    def __enter__(self) -> None:
        self.watchdog.begin(self.thread_id, self.clock)

    def __exit__(self, *exc: object) -> None:
        while True:
            try:
                interrupted = self.watchdog.end(self.thread_id)
                break
            except _Interrupted:  # went off here, before the watch ended: end it again
                interrupted = True
        # Late is late, also when the watchdog could not interrupt in time: a long call in C
        # holds the interpreter, and the watchdog with it, until it returns.
        if interrupted or self.clock.spent():
            raise _Interrupted


def _set_async_exception(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


_watchdog = _Watchdog()


# --- The result as plain JSON values ----------------------------------------------------------


def _plain(value: Any) -> Any:
    """The result as JSON values, with the library's own types converted and its size checked:
    JSONata null becomes None, whole floats become ints (as JSON numbers have one kind). Raises
    TransformError for undefined, functions and non-finite numbers."""
    if value is None:
        raise _Stop("The transformation gave no result (undefined): every message needs a body.")
    budget = _SizeBudget()
    root: list[Any] = []
    pending: list[tuple[Any, list[Any] | dict[str, Any], str]] = [(value, root, "")]
    while pending:
        node, parent, key = pending.pop()
        budget.count(node)
        if isinstance(node, dict):
            plain: Any = {}
            # A member is None only where the message had null: the library leaves undefined
            # members out of the objects it builds.
            pending.extend((member, plain, name) for name, member in reversed(node.items()))
        elif isinstance(node, list):
            plain = []
            pending.extend((member, plain, "") for member in reversed(node))
        else:
            plain = _plain_scalar(node)
        if isinstance(parent, list):
            parent.append(plain)
        else:
            budget.count(key)
            parent[key] = plain
    return root[0]


def _plain_scalar(value: Any) -> Any:
    if value is None or value is utils.Utils.NULL_VALUE:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Stop("The transformation made a number JSON cannot carry.")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    raise _Stop("The transformation's result holds a function or other value that is not JSON.")


class _SizeBudget:
    __slots__ = ("chars", "items")

    def __init__(self) -> None:
        self.chars = 0
        self.items = 0

    def count(self, value: Any) -> None:
        self.items += 1
        if isinstance(value, str):
            self.chars += len(value)
        if self.chars > MAX_TEXT_CHARS or self.items > MAX_ITEMS:
            raise _Stop(_too_big())
