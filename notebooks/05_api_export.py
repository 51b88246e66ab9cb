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
# 4. turn a flat registry into a namespace tree, with TensorFlow's v1/v2 names, and predict —
#    in the export editor widget — which names collide;
# 5. see through stacked decorators (`__wrapped__`), as `tf_export` does to find where names live;
# 6. pick a symbol's canonical name the way TensorFlow does, look a symbol up by name, and make
#    a deprecated name warn once, only when it is used;
# 7. generate the `__init__.py` files of a public package from the registry, as TensorFlow's
#    build does, and check that every name in it resolves to its object.
#
# **Prerequisites:** Python functions, classes and closures; no deep learning needed.
# **Time:** about 70 minutes.

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

# %% [markdown]
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
# ## Widget: edit an export
#
# The toy API `toyflow` below already holds `add`, `matmul`, `relu` and `Dense`. Type the names
# of one more symbol, `my_op` — the arguments of `@tf_export(...)` — into the first field, and
# its v1 names into the second (they are used when the box "v1 = names" is unticked; an empty
# field then means `v1=[]`). The picture shows the `toyflow.*` and `toyflow.compat.v1.*` trees
# the registry would build, `my_op`'s names in blue, collisions in red, and below them the
# attributes `api_export` writes on `my_op` (TensorFlow's are `_tf_api_names` and
# `_tf_api_names_v1`). Try `math.add`, then `math`, then `nn.relu.fast`, then `2fast`.
# (`course_lib.api.export_widget`; its pure state is `export_state`, checked against really
# applying `api_export` in `tests/test_api_export_view.py`.)

# %%
from course_lib.api import export_state, export_widget

export_widget()

# %% tags=["nbval-check-output"]
collision = export_state("math.add, ops.add_one", "ops.add_one, matmul", v1_default=False)
print(collision.caption)
assert [c.name for c in collision.collisions] == ["math.add", "matmul"] and collision.attributes == ()
invalid = export_state("ops.2fast")
print(invalid.caption)
assert invalid.error is not None and not invalid.accepted

# %% [markdown]
# ## Stacked decorators: `__wrapped__`, and where the names live
#
# Real exported functions rarely carry one decorator. `functools.wraps(f)` sets
# `wrapper.__wrapped__ = f` and *updates* `wrapper.__dict__` with `f.__dict__`; stack a few and the
# public name holds the outermost wrapper, the written function several `__wrapped__` hops away.
# `course_lib.api.unwrap` follows the chain, like `inspect.unwrap`, and returns every hop:

# %% tags=["nbval-check-output"]
from course_lib.api import declared_names, unwrap

clear("toyflow")


def twice(x):
    return 2 * x


retried = logged(twice)  # two wraps-based decorators, as `@logged` twice would apply them
traced = logged(retried)
wrappers, target = unwrap(traced)
print("hops:", len(wrappers), "| target is twice:", target is twice, "| traced.__wrapped__ is retried:",
      traced.__wrapped__ is retried)
assert wrappers == (traced, retried) and target is twice

# %% [markdown]
# Where should an export decorator store its names when other decorators are stacked with it?
# TensorFlow's answer (`tensorflow/python/util/tf_export.py`, `api_export.__call__`):
# `_, undecorated_func = tf_decorator.unwrap(func)`, set `_tf_api_names` and `_tf_api_names_v1`
# on `undecorated_func`, return `func` unchanged. Everything that reads names unwraps first —
# `get_canonical_name_for_symbol` and the API generator (`create_python_api.py`,
# `get_api_init_text`: `_, attr = tf_decorator.unwrap(attr)`) — so the names are found whatever
# the order of the decorators. (`tf_decorator.unwrap` follows TensorFlow's own `_tf_decorator`
# attribute, which `tf_decorator.make_decorator` sets along with `__wrapped__`; a plain
# `functools.wraps` wrapper is opaque to it.)
#
# The course's `api_export` stores names on the object it is given, so the names sit on the
# outer wrapper when `@export` is on top, and on the function when it is below (copied onto each
# wrapper made afterwards). `declared_names` reads along the `__wrapped__` chain and finds them
# in both orders:

# %% tags=["nbval-check-output"]
def halve(x):
    return x / 2


export_below = logged(tf_export("math.halve")(halve))  # @logged above @tf_export


def negate(x):
    return -x


export_above = tf_export("math.negate")(logged(negate))  # @tf_export above @logged
for label, public, inner in (("export below", export_below, halve), ("export above", export_above, negate)):
    print(f"{label}: on the wrapper {exported_names(public, 'toyflow')}, on the function "
          f"{exported_names(inner, 'toyflow')}, declared_names {declared_names(public, 'toyflow')}")
assert declared_names(export_below, "toyflow") == ("math.halve",) and declared_names(export_above, "toyflow") == ("math.negate",)
assert registry("toyflow")["math.negate"] is export_above  # export on top: the registry holds what users call
assert registry("toyflow")["math.halve"] is halve and halve is not export_below  # export below: the inner function

# %% [markdown]
# The names are found either way, but the *registry* holds the object the decorator was given:
# with `@export` below another decorator that is the inner function, not the wrapper users call.
# So in this course `@export` goes on top, where it sees the finished object.

# %% [markdown]
# ## Canonical names, deprecated endpoints and the name → symbol table
#
# A symbol with several names needs one for docs and messages. TensorFlow's rule
# (`tf_export.py`, `get_canonical_name_for_symbol` and `get_canonical_name`): unwrap, then the
# first v2 name that is not deprecated; else the first v2 name; else the same among the v1 names
# (prefixed `compat.v1.` when `add_prefix_to_v1_names=True`). Deprecated names are declared with
# `deprecation.deprecated_endpoints("log")` (`tensorflow/python/util/deprecation.py`), which only
# sets `_tf_deprecated_api_names` — its docstring says it "does not print deprecation messages".
# The course's `deprecated_endpoints` and `canonical_name` follow that rule. In the toy API, `log`
# gets the TF 2 name `math.log` and keeps `log` as a deprecated v1 name:

# %%
from course_lib.api import canonical_name, deprecated_endpoints, name_to_symbol, symbol_from_name

show_source(canonical_name)


# %% tags=["nbval-check-output"]
@tf_export("math.log", v1=["math.log", "log"])
@deprecated_endpoints("log", api_name="toyflow")
def log(x):
    return x


@tf_export("log_v2_first", "math.log_v2_first", v1=["log_v2_first"])
@deprecated_endpoints("log_v2_first", api_name="toyflow")
def log_v2_first(x):
    return x


print("log:", canonical_name(log, "toyflow"), "| log_v2_first:", canonical_name(log_v2_first, "toyflow"),
      "(its first name is deprecated)")
assert canonical_name(log, "toyflow") == "math.log" and canonical_name(log_v2_first, "toyflow") == "math.log_v2_first"
assert canonical_name(logged(log), "toyflow") == "math.log"  # found through another decorator

# %% [markdown]
# The other direction, name → symbol: `api_export.__call__` also fills one module-level dict,
# `_NAME_TO_SYMBOL_MAPPING[name] = func` for each v2 name and
# `_NAME_TO_SYMBOL_MAPPING['compat.v1.%s' % name_v1] = func` for each v1 name, read by
# `get_symbol_from_name(name)` (`tf_export.py`). Being a plain dict assignment, a second symbol
# under the same name would silently replace the first *there*; two symbols under one name are
# refused later, when the API is generated (below). The course refuses them at decoration time
# (`DuplicateExportError`, shown above), so its table, `name_to_symbol`, never lost an entry:

# %% tags=["nbval-check-output"]
table = name_to_symbol("toyflow")
print(sorted(name for name in table if "log" in name))
assert symbol_from_name("compat.v1.log", "toyflow") is log and symbol_from_name("log", "toyflow") is None
assert all(symbol_from_name(name, "toyflow") is obj for name, obj in table.items())

# %% [markdown]
# ## Deprecated endpoints warn once, and only through the old name
#
# Marking a name deprecated is half the job; old code should *hear* about it — once, and never
# when the new name is used. In TensorFlow 1 every generated module is wrapped in a
# `TFModuleWrapper` (`tensorflow/python/util/module_wrapper.py`) whose attribute access calls
# `_tfmw_add_deprecation_warning`: each name is checked once, a renamed one logs "The name tf.log
# is deprecated. Please use tf.math.log instead.", and at most `_PER_MODULE_WARNING_LIMIT = 1`
# warning is printed per module; the object returned is the symbol itself. The course's
# `deprecating_namespace` does the same from the `deprecated_endpoints` marks, with one warning
# per deprecated name:

# %% tags=["nbval-check-output"]
import warnings

from course_lib.api import DeprecatedEndpointWarning, deprecating_namespace

toy_api = deprecating_namespace("toyflow")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    new_names = [toy_api.math.log, toy_api.compat.v1.math.log]  # canonical names: silent
    silent = len(caught)
    old_names = [toy_api.compat.v1.log for _ in range(3)]  # the deprecated name, used three times
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message}")
print(f"warnings: {silent} for the new names, {len(caught) - silent} for three uses of the old one")
assert silent == 0 and len(caught) == 1 and issubclass(caught[0].category, DeprecatedEndpointWarning)
assert all(obj is log for obj in new_names + old_names)  # the object itself, never a wrapper

# %% [markdown]
# ## Generating the API package
#
# `import tensorflow as tf; tf.math.add` works because a `tensorflow/math/__init__.py` says
# `from tensorflow.python.ops.math_ops import add`. No one writes it: the build runs
# `tensorflow/python/tools/api/generator/create_python_api.py`, whose `main` imports the packages
# (so every `tf_export` has run) and whose `get_api_init_text` walks `sys.modules`, unwraps each
# module attribute, reads its `_tf_api_names` (or `_v1`) and, per name `a.b.c`, adds an import
# to module `a.b` (`_ModuleInitCodeBuilder.add_import`). A symbol re-exported by several modules
# is imported once, from the module with the highest *priority* (+1 if it is `symbol.__module__`,
# +1 if the attribute name is `symbol.__name__`, then alphabetical: `get_canonical_import`); two
# *different* symbols under one name raise `SymbolExposedTwiceError`; each namespace is imported
# into its parent, and `compat.v1`/`compat.v2` get the same treatment.
#
# `course_lib.api.generate_api` does this for the course's registry — the bookkeeping lives in
# `_InitCodeBuilder.add_import`:

# %%
from course_lib.api import check_api, generate_api, write_api
from course_lib.api.generator import _InitCodeBuilder

show_source(_InitCodeBuilder.add_import)

# %% [markdown]
# Generate the package `course_api` from every module imported so far, with `compat.v1` and
# `compat.v2`, write it to a temporary directory, import it, and check that every registered
# name resolves to the very object that was exported:

# %%
import tempfile

generated = generate_api(["course_lib"], "course_api", compat=True)
print(generated["api"][:560], "...")
with tempfile.TemporaryDirectory() as directory:
    write_api(generated, directory, "course_api")
    checked = check_api(directory, "course_api", compat=True)
print(f"{len(generated)} generated __init__.py modules; {checked} names checked "
      f"({len(registry())} v2 names twice — root and compat.v2 — plus {len(registry(version='v1'))} v1 names)")
assert checked == 2 * len(registry()) + len(registry(version="v1"))

# %% [markdown]
# The same generator refuses what TensorFlow's refuses. A symbol whose names were written by
# hand — as TensorFlow's dict would have accepted — collides with `add` at generation time:

# %% tags=["nbval-check-output"]
import types

from course_lib.api import SymbolExposedTwiceError

toy_module = types.ModuleType("toyflow_ops")  # a throw-away module holding two symbols
toy_module.add = add
toy_module.add_v2 = lambda x, y: x + y
toy_module.add_v2._toyflow_api_names = ("math.add",)  # claims add's name without the registry's check
sys.modules["toyflow_ops"] = toy_module
try:
    generate_api(["toyflow_ops"], "toyflow_generated", api_name="toyflow")
except SymbolExposedTwiceError as err:
    print("SymbolExposedTwiceError:", err)
else:
    raise AssertionError("two objects under one name must be refused")
finally:
    del sys.modules["toyflow_ops"]

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
#   TensorFlow's `_NAME_TO_SYMBOL_MAPPING` would let a later export overwrite an earlier one; its
#   API generator is where two symbols under one name are refused (`SymbolExposedTwiceError`).
# * Decorators stack: `functools.wraps` sets `__wrapped__` (and copies `__dict__`), so the
#   decorated function is a chain of hops away. `tf_export` writes its names on the innermost
#   target and the generator unwraps before reading them; the course follows `__wrapped__`
#   (`unwrap`, `declared_names`) and puts `@export` on top, so the registry holds what users call.
# * The canonical name is the first non-deprecated v2 name, else the first v2 name, else the v1
#   rule (`compat.v1.` on request); `deprecated_endpoints` only *marks* names, and a namespace
#   that checks those marks warns once, on the old name only, and returns the object itself.
# * A public package is generated: walk the imported modules, read each object's names, write one
#   `from <module> import <attr> as <name>` per name into the `__init__.py` of its namespace
#   (the defining module preferred), and check the result imports and resolves every name.
#
# References: TensorFlow `tensorflow/python/util/tf_export.py` (`api_export.__call__`,
# `get_canonical_name_for_symbol`, `get_canonical_name`, `get_symbol_from_name`),
# `tensorflow/python/util/tf_decorator.py` (`make_decorator`, `unwrap`),
# `tensorflow/python/util/deprecation.py` (`deprecated_endpoints`, `deprecated_alias`),
# `tensorflow/python/util/module_wrapper.py` (`TFModuleWrapper`) and the API generator
# `tensorflow/python/tools/api/generator/create_python_api.py` (`get_api_init_text`,
# `_ModuleInitCodeBuilder`, `get_canonical_import`, `SymbolExposedTwiceError`); PEP 318
# (decorators); the Python docs for `functools.partial`, `functools.wraps` and `inspect.unwrap`.
# Library: `course_lib/api/`; tests: `tests/test_api.py`, `tests/test_api_mechanics.py`,
# `tests/test_api_export_view.py`.
