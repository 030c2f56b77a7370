from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import SpecError
from harness.spec import (
    ExpansionSpec,
    expand,
    load_spec,
    realise,
    round_repeats,
    round_width,
    spec_hash,
)


@pytest.mark.parametrize(
    ("width", "factor", "expected"),
    [
        (12, 2.0, 24),  # PySlowFast's X3D stem: 12 x 2.0
        (12, 2.9, 32),  # X3D-XL stem: 34.8 rounds down to 32 (within 10%)
        (24, 2.9, 72),  # 69.6 -> 72
        (96, 2.9, 280),  # 278.4 -> 280
        (432, 0.0625, 32),  # SE width of X3D's res5: 27 -> 24 is >10% low -> 32
        (54, 0.0625, 8),  # never below the divisor
        (64, 1.0, 64),
    ],
)
def test_round_width(width: int, factor: float, expected: int) -> None:
    assert round_width(width, factor) == expected


@given(st.integers(1, 4096), st.floats(0.05, 8.0))
def test_round_width_properties(width: int, factor: float) -> None:
    out = round_width(width, factor)
    assert out % 8 == 0 and out >= 8
    assert out >= 0.9 * width * factor  # never more than 10% below the exact width
    assert out <= width * factor + 8


@pytest.mark.parametrize(
    ("repeats", "factor", "expected"), [(1, 2.2, 3), (5, 2.2, 11), (3, 5.0, 15), (2, 1.0, 2)]
)
def test_round_repeats(repeats: int, factor: float, expected: int) -> None:
    assert round_repeats(repeats, factor) == expected


def test_identity_factors_change_nothing() -> None:
    spec = load_spec("r2plus1d_18")  # widths such as the stem's 45 are not multiples of 8
    assert expand(spec, ExpansionSpec()) == spec


def test_x3d_xl_expansion_from_x2d() -> None:
    real = realise(load_spec("x3d_xl"))
    assert real.expansion.is_identity()
    assert real.stem.width == 32
    assert [s.width for s in real.stages] == [32, 72, 136, 280]
    assert [s.depth for s in real.stages] == [5, 10, 25, 15]
    assert [s.inner(s.width) for s in real.stages] == [72, 162, 306, 630]
    assert (real.clip.frames, real.clip.size) == (16, 356)


def test_clip_axes_expand() -> None:
    spec = load_spec(
        "x2d", expansion={"gamma_t": 4, "gamma_s": 2, "gamma_tau": 2}, clip={"stride": 12}
    )
    real = realise(spec)
    assert (real.clip.frames, real.clip.size, real.clip.stride) == (4, 224, 6)


def test_aliases_and_plain_names_agree() -> None:
    a = load_spec("x2d", expansion={"gamma_w": 2.0, "gamma_d": 2.2})
    b = load_spec("x2d", expansion={"width": 2.0, "depth": 2.2})
    assert a.expansion == b.expansion
    assert spec_hash(a) == spec_hash(b)


def test_hash_is_of_the_realised_architecture() -> None:
    m = load_spec("x3d_m")
    assert spec_hash(m) == spec_hash(realise(m))
    assert spec_hash(m) != spec_hash(load_spec("x3d_s"))  # clip differs
    assert spec_hash(m) == spec_hash(load_spec("x3d_m", description="renamed", name="other"))
    assert spec_hash(m) == spec_hash(load_spec("x3d_m", classes=10))  # runtime, not architecture
    assert len(spec_hash(m)) == 64


def test_depth_factor_on_explicit_blocks_is_an_error() -> None:
    with pytest.raises(SpecError, match="lists its blocks one by one") as info:
        realise(load_spec("s3d", expansion={"gamma_d": 2}))
    assert info.value.path == ("stages", 2, "blocks")


def test_width_factor_scales_inception_branches() -> None:
    real = realise(load_spec("s3d", expansion={"gamma_w": 2}))
    assert real.stages[2].blocks[0].branches.b0 == 128
