# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · How frameworks export their APIs
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/05_api_export.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F05_api_export.ipynb)
#
# `tf.math.add` is defined in `tensorflow/python/ops/math_ops.py`. How does it end up at
# `tf.math.add` — and also at `tf.add` and `tf.compat.v1.add` — while hundreds of helpers in the
# same file stay private? TensorFlow does not decide by file layout. It marks each public symbol
# with a decorator at its definition:
#
# ```python
# @tf_export("math.add", "add", v1=["math.add", "add"])
# def add(x, y, name=None): ...
# ```
#
# and generates the public packages from the names the decorator collected. This chapter
# builds that mechanism from first principles — decorators, `functools.partial`, a registry —
# and shows that `course_lib` itself is exported the same way.
#
# **You will be able to**
# 1. read `@d` as `f = d(f)` and write decorators with and without arguments;
# 2. bind shared arguments with `functools.partial`, as `tf_export` binds `api_name`;
# 3. build a registering decorator that returns the object itself, refuses duplicate names and
#    keeps names per object (subclasses included), and measure what a wrapper would cost instead;
# 4. turn a flat registry into a namespace tree, with TensorFlow's v1/v2 names.
#
# **Prerequisites:** Python functions, classes and closures; no deep learning needed.
# **Time:** about 45 minutes.

# %%
import sys  # On Colab only: install this course at this notebook's version. GPU: Runtime > Change runtime type.

if "google.colab" in sys.modules:
    import importlib.metadata
    import re
    import subprocess

    # The course without its dependencies, then its requirements by name only: pip adds what Colab
    # lacks and leaves every package Colab has (torch, ipywidgets 7, the kernel) as it is.
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "git+https://github.com/dl-systems-course/dl-systems-course@v0.1.0"], check=True)
    names = [re.sub(r"^([\w.-]+)[^;]*", r"\1", r) for r in importlib.metadata.requires("course-lib") if "extra ==" not in r]
    subprocess.run([*pip, *names], check=True)

# %% [markdown]
# ## Decorators from first principles
#
# A decorator is just a function that takes a function and returns something. The `@` line is
# syntax for a reassignment:
#
# ```python
# @d                    # is exactly        def f(x): ...
# def f(x): ...         #                   f = d(f)
# ```
#
# So a decorator can return a *new* function (a wrapper), or it can do some bookkeeping and
# return *the very same object*. Two toy decorators, written here to look at (they are not part
# of the library):

# %% tags=["nbval-check-output"]
calls = []


def logged(fn):  # returns a NEW function that wraps fn
    def wrapper(*args):
        calls.append(fn.__name__)
        return fn(*args)
    return wrapper


seen = []


def noted(fn):  # records fn somewhere and returns fn ITSELF
    seen.append(fn.__name__)
    return fn


def square(x):
    return x * x


logged_square = logged(square)  # what `@logged` above `def square` would do
noted_square = noted(square)
print(logged_square(3), calls, logged_square is square, logged_square.__name__)
print(noted_square(3), seen, noted_square is square)
assert logged_square is not square and noted_square is square

# %% [markdown]
# The wrapper lost the function's name (`wrapper`) — `functools.wraps` copies `__name__`,
# `__doc__` and friends onto it, and sets `__wrapped__`. It is still a different object, and
# every call now runs two Python frames instead of one.
#
# ## Decorators with arguments, and `functools.partial`
#
# `@tf_export("math.add")` has arguments, so `tf_export("math.add")` must *return* the
# decorator. TensorFlow writes it as a class: `__init__` takes the names, `__call__` takes the
# function. And since every call site would otherwise repeat `api_name="tensorflow"`, TF binds
# that argument once with `functools.partial`, which returns a callable with some arguments
# already filled in:

# %% tags=["nbval-check-output"]
import functools

from course_lib.api import api_export, export

power = functools.partial(pow, 2)  # pow(2, ...) with the base bound
print(power(10), power.func is pow, power.args)
print(export.func is api_export, export.keywords)
assert power(10) == 1024 and export.keywords == {"api_name": "course_lib"}

# %% [markdown]
# `course_lib.api.export` is `functools.partial(api_export, api_name="course_lib")`, just as
# TensorFlow's `tf_export = functools.partial(api_export, api_name="tensorflow")`.
#
# ## The implementation: `course_lib.api.api_export`
#
# Applying `api_export("ops.nms", api_name=...)` to an object (1) validates the names, (2)
# refuses a name already taken by a *different* object, (3) writes the names onto the object
# in its own `__dict__`, (4) records them in a registry `{(api, version): {name: object}}`, and
# (5) returns the object unchanged:

# %%
from course_lib.source import show_source

show_source(api_export)

# %% [markdown]
# ## Check: same object, clear duplicates, classes and subclasses
#
# A toy API, `toyflow`, so the course's own registry stays clean. (`clear("toyflow")` first,
# so this cell can be re-run: re-running creates *new* function objects, which would otherwise
# collide with the old ones under the same names.)

# %% tags=["nbval-check-output"]
from course_lib.api import DuplicateExportError, clear, exported_names, registry

clear("toyflow")
tf_export = functools.partial(api_export, api_name="toyflow")


def add(x, y):
    return x + y


assert tf_export("math.add", v1=["math.add", "add"])(add) is add  # the very same object
print("v2 registry:", {name: obj.__name__ for name, obj in registry("toyflow").items()})
print("v1 registry:", {name: obj.__name__ for name, obj in registry("toyflow", "v1").items()})


def impostor(x, y):
    return x - y


try:
    tf_export("math.add")(impostor)
except DuplicateExportError as err:
    print("DuplicateExportError:", err)
else:
    raise AssertionError("a second object under the same name must be refused")
assert registry("toyflow")["math.add"] is add

# %% [markdown]
# Names live in the object's *own* `__dict__` and are read back with `vars()`, not `getattr`:
# a subclass would otherwise appear to be exported under its parent's names. Exporting a class
# and a subclass works, each with its own names:

# %% tags=["nbval-check-output"]
@tf_export("keras.Layer")
class Layer:
    pass


class Helper(Layer):  # not exported
    pass


@tf_export("keras.layers.Dense")
class Dense(Layer):
    pass


for cls in (Layer, Helper, Dense):
    print(f"{cls.__name__:<6} own names: {exported_names(cls, 'toyflow')!s:<26} "
          f"getattr says: {cls._toyflow_api_names}")
assert exported_names(Helper, "toyflow") == () and exported_names(Dense, "toyflow") == ("keras.layers.Dense",)
assert isinstance(Dense(), Layer)  # still the real class: subclassing and isinstance work

# %% [markdown]
# ## Experiment: a wrapper or the object itself?
#
# Returning a `functools.wraps` wrapper would also let us register the function — at a price on
# every call. `course_lib.api.wrapping_register` is that version; `call_overhead` times a tiny
# function bare and behind the wrapper, interleaved in one run with `course_lib.timing.compare`
# (warm-up, repeated samples, median and interquartile range). The exported function is not
# timed separately: it *is* the bare function (asserted), and timing one object twice only
# measures the machine's noise.

# %%
from course_lib.api import call_overhead, wrapping_register

show_source(wrapping_register)

# %%
import matplotlib.pyplot as plt

overhead = call_overhead(number=100_000, repeat=9)
assert overhead.exported_is_bare  # the exported function IS the bare one: zero overhead by construction
for label, t in overhead.timings.items():
    print(f"{label:<8} median {t.median * 1e9:6.1f} ns per call, middle half {t.q1 * 1e9:.1f}–{t.q3 * 1e9:.1f} ns")
ratio = overhead.wrapped_ns / overhead.bare_ns
print(f"the wrapper adds {overhead.wrapper_overhead_ns:.1f} ns per call: {ratio:.2f}x the bare call "
      "(medians of the same run; both calls go through a functools.partial)")
fig, ax = plt.subplots(figsize=(6, 2.0))
labels = ["bare = api_export", "functools.wraps wrapper"]
medians = [1e9 * t.median for t in overhead.timings.values()]
errors = [[1e9 * (t.median - t.q1) for t in overhead.timings.values()],
          [1e9 * (t.q3 - t.median) for t in overhead.timings.values()]]
ax.barh(labels, medians, xerr=errors, color=["tab:green", "tab:red"], capsize=4)
ax.set_xlabel("ns per call of `x + 1` (median, bars: middle half of the samples)")
plt.show()

# %% [markdown]
# The exported function costs what the bare one costs — it *is* the bare one. The wrapper adds a
# Python frame per call (the difference printed above), which is nothing for a matmul and a lot
# for a function called millions of times in a loop. It also changes identity, and what breaks
# is specific — the cell below shows each case:
#
# * `is` comparisons: the public name now holds the wrapper, not the function;
# * `pickle` of the *wrapped* function still works (`functools.wraps` copies `__qualname__`, so
#   pickle finds the wrapper under the same name), but the *original* function — kept by
#   anything that saw it before decoration, such as a registry — no longer pickles: its name
#   resolves to a different object;
# * a wrapped **class** is a function: `isinstance(x, Wrapped)` raises `TypeError` and
#   `class Sub(Wrapped)` fails, although instances are still created.
#
# That is why `tf_export` returns the object.

# %% tags=["nbval-check-output"]
import pickle


def logged(fn):  # a registering decorator that returns a wrapper
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


def triple(x):
    return 3 * x


original = triple
triple = logged(triple)  # what `@logged` above `def triple` does
print("public name is the function:", triple is original)
print("wrapped function pickles:", pickle.loads(pickle.dumps(triple)) is triple)
try:
    pickle.dumps(original)
    original_pickles = True
except pickle.PicklingError:
    original_pickles = False
print("original function pickles:", original_pickles)


class Layer:
    pass


WrappedLayer = logged(Layer)
instance = WrappedLayer()
print("instances are still Layer objects:", type(instance) is Layer)
try:
    isinstance(instance, WrappedLayer)
    isinstance_works = True
except TypeError:
    isinstance_works = False
print("isinstance against the wrapped class works:", isinstance_works)
assert triple is not original and not original_pickles and not isinstance_works and type(instance) is Layer
#
# ## From registry to namespace
#
# The registry is flat: `{"math.add": add, "keras.layers.Dense": Dense}`. Users want attribute
# access: `tf.math.add`. TensorFlow's build generates one `__init__.py` per dotted prefix; the
# same tree can be built in memory from `types.SimpleNamespace` objects —
# `course_lib.api.tree`:

# %%
from course_lib.api import namespace, tree

show_source(tree)

# %% [markdown]
# `namespace("toyflow", compat=True)` builds the v2 tree and attaches `compat.v1` (from the v1
# names) and `compat.v2` — the shape of TensorFlow 2's package, where one annotation,
# `tf_export("math.add", v1=["math.add", "add"])`, produced `tf.math.add`,
# `tf.compat.v1.math.add` and `tf.compat.v1.add`. Without `v1=`, the v1 names default to the v2
# names (TensorFlow's rule); `v1=[]` keeps a symbol out of v1.

# %% tags=["nbval-check-output"]
@tf_export("nn.gelu", v1=[])  # a TF2-only symbol
def gelu(x):
    return x


toy = namespace("toyflow", compat=True)
print("toy.math.add:", toy.math.add.__name__)
print("toy.compat.v1.add:", toy.compat.v1.add.__name__, "| toy.compat.v1.math.add:", toy.compat.v1.math.add.__name__)
print("toy.keras.layers.Dense:", toy.keras.layers.Dense.__name__)
print("in v1:", hasattr(toy.compat.v1, "nn"), "| hasattr(toy, 'add'):", hasattr(toy, "add"))
assert toy.math.add is toy.compat.v1.add is toy.compat.v2.math.add is add
assert toy.nn.gelu is gelu and not hasattr(toy.compat.v1, "nn")

# %% [markdown]
# ## `course_lib` exports itself the same way
#
# Every chapter marks its public functions with `@export("<module>.<name>")`. The registry is
# filled as modules are imported, so the first step is importing every chapter's module
# (`course_lib.chapters.CHAPTERS`). The README's API table is generated from this registry
# (`python -m course_lib api`), and `tests/test_api.py` checks that every name resolves to the
# very object that was exported — `course_lib.api.resolve` follows the dotted name exactly as
# `import course_lib.<module>` plus attribute access would.

# %%
import importlib
import importlib.util

from course_lib.api import resolve
from course_lib.chapters import CHAPTERS

for chapter in CHAPTERS:
    if importlib.util.find_spec(chapter.module) is not None:  # chapters still being written are skipped here
        importlib.import_module(chapter.module)
public = registry()
by_module = {}
for name in public:
    by_module.setdefault(name.split(".")[0], []).append(name)
for module, names in sorted(by_module.items()):
    print(f"course_lib.{module:<12} {len(names):3d} names, e.g. {names[0]}")
print(f"{len(public)} public names in {len(by_module)} modules, every one resolving to its object")
assert all(resolve(name) is obj for name, obj in public.items())
assert {chapter.module.removeprefix("course_lib.") for chapter in CHAPTERS
        if importlib.util.find_spec(chapter.module) is not None} <= set(by_module)  # every chapter exports
course = namespace("course_lib")
assert course.api.export is export and course.api.namespace is namespace

# %% [markdown]
# ## Exercises
#
# Replace `raise NotImplementedError` with your code and run the cell; each exercise has
# `.hint()` (call again for the next) and `.solution()`.
#
# ### 1. The exporting decorator
#
# The chapter's mechanism, built by you. The check uses your function the way TensorFlow uses
# `api_export`: it binds it with `functools.partial`, applies the result along a few scripted
# exports (including duplicates), and builds the library's namespace (`course_lib.api.tree`) from
# the registry your decorator filled.

# %%
from course_lib.api.exercises import api_tables, build_tree, export_decorator, own_names

export_decorator.show();


# %%
def my_api_export(*names, api_name, registry):
    raise NotImplementedError  # your code here


export_decorator.check(my_api_export);

# %% [markdown]
# ### 2. Own names, 3. the namespace tree, 4. v1 and v2 tables

# %%
own_names.show();

# %%
def my_own_names(obj):
    raise NotImplementedError  # your code here


own_names.check(my_own_names);

# %%
build_tree.show();

# %%
def my_build_tree(entries):
    raise NotImplementedError  # your code here


build_tree.check(my_build_tree);

# %%
api_tables.show();

# %%
def my_api_tables(exports):
    raise NotImplementedError  # your code here


api_tables.check(my_api_tables);

# %% [markdown]
# ## Summary
#
# * `@d` above `def f` is `f = d(f)`; a decorator with arguments is a factory of decorators,
#   and `functools.partial` binds the arguments every call site shares (`api_name`).
# * Timing one object under two names measures noise: compare alternatives interleaved, repeated,
#   by their medians (`course_lib.timing.compare`), and assert identity where it is the point.
# * An export decorator *records* names — on the object (in its own `__dict__`, so subclasses do
#   not inherit them) and in a registry — and returns the object itself: zero call overhead,
#   identity preserved. A `functools.wraps` wrapper costs a frame per call and changes identity:
#   the original no longer pickles, and a wrapped class breaks `isinstance` and subclassing.
# * The public API is a namespace built from the flat registry; one annotation with `v1=` feeds
#   both `tf.*` and `tf.compat.v1.*`.
# * Duplicate names fail loudly at import time, and a test checks every public name resolves.
#
# References: TensorFlow `tensorflow/python/util/tf_export.py` and its API generator
# (`tensorflow/python/tools/api/generator/create_python_api.py`); PEP 318 (decorators); the
# Python docs for `functools.partial` and `functools.wraps`. Library: `course_lib/api/`; tests:
# `tests/test_api.py`.
