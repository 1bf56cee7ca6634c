"""Generated `--config.<field>=<value>` overrides for the fuzz tests of the training command's
checks (tests/test_configs.py in-process, tests/scripts/test_train.py through the command line):
a random dotted field of `config.base()` with a value of the wrong type, sign, range or shape, an
empty or huge string, NaN or an infinity, or the field's own default."""

from __future__ import annotations

from hypothesis import strategies as st

from cnn_depth import config as config_lib


def fields(config=None) -> list[str]:
  """Every dotted leaf field of `config` (default: config.base()), e.g. 'model.depth'."""

  def walk(node, prefix):
    for key, value in node.items():
      if hasattr(value, "items"):
        yield from walk(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}"

  return list(walk(config or config_lib.base(), ""))


# What a command line can carry: no NUL, no lone surrogates.
_TEXT = st.text(
  st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_NUMBER = st.one_of(
  st.integers(-(10**12), 10**12),
  st.floats(allow_nan=True, allow_infinity=True),
  st.sampled_from([0, -1, 1, 2**32, -0.0, 1e-300, 1e300]),
)
_LITERAL = st.sampled_from(
  [
    "",
    " ",
    "nan",
    "-inf",
    "inf",
    "None",
    "True",
    "false",
    "()",
    "(1,",
    "[]",
    "{}",
    "(3, 2)",
    "(-1, 5)",
    "(0.5, 'a')",
    "((1, 2),)",
    "(nan,)",
    "x" * 10_000,
    "'quoted'",
    "1_000",
    "0x10",
  ]
)


def _render(value) -> str:
  return repr(value) if isinstance(value, tuple) else str(value)


@st.composite
def override(draw, config=None) -> str:
  """One '--config.<field>=<value>' string."""
  field = draw(st.sampled_from(fields(config)))
  default = config_lib.get_field(config or config_lib.base(), field)
  value = draw(
    st.one_of(
      _NUMBER.map(_render),
      _LITERAL,
      _TEXT,
      st.tuples(_NUMBER, _NUMBER).map(_render),
      st.lists(_NUMBER, max_size=4).map(lambda v: _render(tuple(v))),
      st.just(_render(default)),
    )
  )
  return f"--config.{field}={value}"
